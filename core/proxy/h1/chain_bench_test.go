package h1_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// mtlsPair is a server and a client TLS configuration that authenticate
// each other with one self-signed ECDSA P-256 certificate, TLS 1.3 as
// between sidecars.
func mtlsPair(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "weft.test"},
		DNSNames:     []string{"weft.test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "weft.test", MinVersion: tls.VersionTLS13}
	return server, client
}

// BenchmarkForwardChainMTLS is BenchmarkHTTPChain's shape with two h1
// forwarders: client, the caller's forwarder (plain), mTLS, the callee's
// forwarder, the app, one request at a time on kept-alive connections.
// Neither sidecar's routing, authorization, metrics or access log is in
// it (h1 is not wired into core/proxy yet): it is the engine's share.
//
//	go test -run - -bench ForwardChainMTLS -benchmem ./core/proxy/h1
func BenchmarkForwardChainMTLS(b *testing.B) {
	srvTLS, cliTLS := mtlsPair(b)
	inbound := benchForwarder(benchApp(b))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go inbound.ServeConn(tls.Server(c, srvTLS))
		}
	}()
	outbound := benchForwarder(ln.Addr().String())
	outbound.Dial = func() (net.Conn, error) { return tls.Dial("tcp", ln.Addr().String(), cliTLS) }
	outbound.Set = nil // the caller's hop sets no identity headers
	c, err := net.Dial("tcp", serveForwarder(b, outbound))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	roundTrips(b, c, benchRequest)
}
