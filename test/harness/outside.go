package harness

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCA is a certificate authority of a test's own, standing for the CA
// of a destination outside the mesh (egress tests): NewTestCA makes one,
// Issue signs a server certificate, WritePEM writes its certificate where
// a policy's ca_file can name it.
type TestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// NewTestCA makes a P-256 CA named cn, valid for a day.
func NewTestCA(t testing.TB, cn string) *TestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &TestCA{cert: cert, key: key, der: der}
}

// PEM is the CA's certificate in PEM.
func (ca *TestCA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// WritePEM writes the CA's certificate to path.
func (ca *TestCA) WritePEM(t testing.TB, path string) string {
	t.Helper()
	WriteFile(t, path, string(ca.PEM()))
	return path
}

// Issue signs a server (and client) certificate for the DNS names and IP
// addresses in hosts.
func (ca *TestCA) Issue(t testing.TB, hosts ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.der}, PrivateKey: key}
}

// Outside is a TLS server standing for a destination outside the mesh:
// an HTTPS server answering "outside <Host header> <path>", or a TLS echo
// server (a line back, prefixed "echo "). Hellos says what every TLS
// client said when it connected.
type Outside struct {
	Addr string
	mu   sync.Mutex
	sni  []string
	errs []string
}

// Hellos returns the server names (SNI) clients sent, in order.
func (o *Outside) Hellos() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.sni...)
}

// HandshakeErrors returns the handshakes that failed on the server's side.
func (o *Outside) HandshakeErrors() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.errs...)
}

// StartOutside listens on addr (a loopback host:port; port 0: any) with
// cert; echo chooses the TLS echo server over HTTPS (a plain TCP echo
// server when cert is empty). The server is closed
// at the end of the test.
func StartOutside(t testing.TB, addr string, cert tls.Certificate, echo bool) *Outside {
	t.Helper()
	o := &Outside{}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			o.mu.Lock()
			o.sni = append(o.sni, h.ServerName)
			o.mu.Unlock()
			return nil, nil
		},
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s for the outside server: %v", addr, err)
	}
	o.Addr = ln.Addr().String()
	t.Cleanup(func() { ln.Close() })
	if echo && cert.Certificate == nil {
		go Serve(ln, func(c net.Conn) {
			c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "echo %s", line)
		})
		return o
	}
	if echo {
		go Serve(ln, func(c net.Conn) {
			tc := tls.Server(c, cfg)
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			if err := tc.Handshake(); err != nil {
				o.failed(err)
				return
			}
			line, err := bufio.NewReader(tc).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(tc, "echo %s", line)
		})
		return o
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "outside %s %s", r.Host, r.URL.Path)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          newHandshakeLog(o),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *Outside) failed(err any) {
	o.mu.Lock()
	o.errs = append(o.errs, fmt.Sprint(err))
	o.mu.Unlock()
}

// newHandshakeLog is the HTTPS server's error log: its lines (the
// failed handshakes among them) go to HandshakeErrors.
func newHandshakeLog(o *Outside) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		o.failed(strings.TrimSpace(string(p)))
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// PortOf is the port of addr (host:port).
func PortOf(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("%q is not host:port", addr)
	}
	return n
}
