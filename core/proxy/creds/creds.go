package creds

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/spiffe"
)

// Credentials are what the proxy presents to its peers and what it trusts:
// its own certificate and key, and the mesh's roots. During a root rotation
// Roots holds both the old and the new root.
type Credentials struct {
	// Cert is the leaf first, then intermediates; Leaf must be set.
	Cert tls.Certificate
	// Roots verifies every peer's chain.
	Roots *x509.CertPool
	// ID is the identity in Cert.
	ID spiffe.Identity

	rootsPEM []byte              // as received, to save them
	roots    []*x509.Certificate // the certificates in Roots
	gen      uint64              // Generation
}

// generations numbers the credentials built in this process.
var generations atomic.Uint64

// Generation is a number no other credentials built in this process
// have: a TLS session made under these credentials carries it, and is
// resumed only under the same (a renewal or new roots end resumption).
func (c *Credentials) Generation() uint64 { return c.gen }

// RootsPEM returns the roots as they were given (to save them, or to see
// whether a trust bundle brings new ones).
func (c *Credentials) RootsPEM() []byte { return c.rootsPEM }

// RootCerts returns the certificates in Roots.
func (c *Credentials) RootCerts() []*x509.Certificate { return c.roots }

// NotAfter is when the certificate expires.
func (c *Credentials) NotAfter() time.Time { return c.Cert.Leaf.NotAfter }

// RenewAt is half way through the certificate's lifetime.
func (c *Credentials) RenewAt() time.Time {
	nb, na := c.Cert.Leaf.NotBefore, c.Cert.Leaf.NotAfter
	return nb.Add(na.Sub(nb) / 2)
}

// New builds credentials from a certificate and its key, and roots in
// PEM.
func New(cert tls.Certificate, rootsPEM []byte) (*Credentials, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("building credentials: the certificate chain is empty")
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parsing leaf certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	id, err := spiffe.FromCert(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("reading own identity: %w", err)
	}
	roots, err := parseRoots(rootsPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return &Credentials{Cert: cert, Roots: pool, ID: id, rootsPEM: rootsPEM, roots: roots, gen: generations.Add(1)}, nil
}

// Parse builds credentials from PEM: the certificate chain (leaf first),
// its private key, and the roots.
func Parse(chainPEM, keyPEM, rootsPEM []byte) (*Credentials, error) {
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading certificate and key: %w", err)
	}
	return New(cert, rootsPEM)
}

func parseRoots(rootsPEM []byte) ([]*x509.Certificate, error) {
	var roots []*x509.Certificate
	for rest := rootsPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing root certificate: %w", err)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, errors.New("parsing roots: no CERTIFICATE block in the PEM; the controller must send at least one root")
	}
	return roots, nil
}
