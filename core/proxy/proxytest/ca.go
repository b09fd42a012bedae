// Package proxytest holds helpers for testing against the sidecar data plane
// (core/proxy) without a controller: a throwaway certificate authority that
// issues SPIFFE leaf certificates, and the credentials a proxy needs.
//
// Entry point: NewCA. Leaves are signed with core/ca's leaf template
// (ca.SignLeaf); the root is a throwaway one kept in memory. It is for tests
// only: weft-proxy does not link it (cmd/weft-proxy's deps test checks).
package proxytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	weftca "github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/spiffe"
)

// CA is a test certificate authority for one trust domain. Its root and
// leaves use ECDSA P-256, like the controller's CA.
type CA struct {
	TrustDomain string
	Cert        *x509.Certificate
	Key         *ecdsa.PrivateKey
	// Pool holds only this CA's root.
	Pool *x509.CertPool
	// RootPEM is the root certificate in PEM.
	RootPEM []byte
}

// NewCA makes a CA with a fresh key for trustDomain.
func NewCA(trustDomain string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "weft test CA " + trustDomain},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: trustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		TrustDomain: trustDomain,
		Cert:        cert,
		Key:         key,
		Pool:        pool,
		RootPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// LeafOptions tunes a leaf certificate. The zero value gives a certificate
// valid from a minute ago for an hour.
type LeafOptions struct {
	NotBefore time.Time
	TTL       time.Duration
	// DNSNames and IPs are added as SANs (for a controller's server certificate).
	DNSNames []string
	IPs      []net.IP
}

// Leaf issues a certificate for spiffe://<td>/ns/<namespace>/svc/<service>
// with a fresh key, ready to present in TLS (Leaf is set).
func (ca *CA) Leaf(namespace, service string, o LeafOptions) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating leaf key: %w", err)
	}
	der, err := ca.sign(spiffe.Identity{TrustDomain: ca.TrustDomain, Namespace: namespace, Service: service}, &key.PublicKey, o)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing leaf certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// SignCSR issues a certificate for id to the key in a DER CSR, as the
// controller does for Join and Renew, and returns it as PEM.
func (ca *CA) SignCSR(csrDER []byte, id spiffe.Identity, o LeafOptions) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parsing CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("checking CSR signature: %w", err)
	}
	der, err := ca.sign(id, csr.PublicKey, o)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// KeyPEM returns a certificate's private key as PEM (PKCS #8).
func KeyPEM(c tls.Certificate) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertPEM returns a certificate's chain as PEM, leaf first.
func CertPEM(c tls.Certificate) []byte {
	var out []byte
	for _, der := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// sign issues a leaf with core/ca's leaf template (ca.SignLeaf), so test
// certificates are shaped as the controller's are.
func (ca *CA) sign(id spiffe.Identity, pub any, o LeafOptions) ([]byte, error) {
	nb := o.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	return weftca.SignLeaf(ca.Cert, ca.Key, pub, id, weftca.Leaf{NotBefore: nb, NotAfter: nb.Add(ttl), DNSNames: o.DNSNames, IPs: o.IPs})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("reading random serial: %v", err))
	}
	return n
}
