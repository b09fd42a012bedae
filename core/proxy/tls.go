package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
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

	rootsPEM []byte // as received, to save them
}

// NotAfter is when the certificate expires.
func (c *Credentials) NotAfter() time.Time { return c.Cert.Leaf.NotAfter }

// RenewAt is half way through the certificate's lifetime.
func (c *Credentials) RenewAt() time.Time {
	nb, na := c.Cert.Leaf.NotBefore, c.Cert.Leaf.NotAfter
	return nb.Add(na.Sub(nb) / 2)
}

// NewCredentials builds credentials from a certificate and its key, and
// roots in PEM.
func NewCredentials(cert tls.Certificate, rootsPEM []byte) (*Credentials, error) {
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
	return &Credentials{Cert: cert, Roots: roots, ID: id, rootsPEM: rootsPEM}, nil
}

// ParseCredentials builds credentials from PEM: the certificate chain (leaf
// first), its private key, and the roots.
func ParseCredentials(chainPEM, keyPEM, rootsPEM []byte) (*Credentials, error) {
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading certificate and key: %w", err)
	}
	return NewCredentials(cert, rootsPEM)
}

func parseRoots(rootsPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
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
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("parsing roots: no CERTIFICATE block in the PEM; the controller must send at least one root")
	}
	return pool, nil
}

// SetCredentials swaps the certificate and roots the proxy uses. Handshakes
// already done keep their certificate; every new one uses these. Safe to
// call at any time, from any goroutine.
func (p *Proxy) SetCredentials(c *Credentials) {
	p.creds.Store(c)
	p.credsMu.Lock()
	defer p.credsMu.Unlock()
	if p.credsChanged != nil {
		close(p.credsChanged)
		p.credsChanged = nil
	}
}

// CredentialsChanged returns a channel closed the next time
// SetCredentials is called, for instance by a renewal.
func (p *Proxy) CredentialsChanged() <-chan struct{} {
	p.credsMu.Lock()
	defer p.credsMu.Unlock()
	if p.credsChanged == nil {
		p.credsChanged = make(chan struct{})
	}
	return p.credsChanged
}

// Credentials returns the credentials in use, or nil before any was set.
func (p *Proxy) Credentials() *Credentials { return p.creds.Load() }

// trustDomain is the applied config's trust domain, or, before any config,
// the one in the proxy's own certificate.
func (p *Proxy) trustDomain() string {
	if a := p.applied.Load(); a != nil && a.cfg.GetTrustDomain() != "" {
		return a.cfg.GetTrustDomain()
	}
	if c := p.creds.Load(); c != nil {
		return c.ID.TrustDomain
	}
	return ""
}

func (p *Proxy) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := p.creds.Load()
	if c == nil {
		return nil, errors.New("the sidecar holds no certificate yet")
	}
	return &c.Cert, nil
}

func (p *Proxy) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := p.creds.Load()
	if c == nil {
		// An empty certificate sends none; the peer will refuse us.
		return &tls.Certificate{}, nil
	}
	return &c.Cert, nil
}

// verifyPeer checks a peer chain against the current roots and trust
// domain. want, when not empty, is the SPIFFE ID the peer must have.
func (p *Proxy) verifyPeer(raw [][]byte, want string) (spiffe.Identity, error) {
	c := p.creds.Load()
	if c == nil {
		return spiffe.Identity{}, errors.New("the sidecar holds no roots yet to verify peers with")
	}
	id, err := spiffe.VerifyPeer(raw, c.Roots, p.trustDomain(), time.Now())
	if err != nil {
		return spiffe.Identity{}, err
	}
	if want != "" && id.String() != want {
		return spiffe.Identity{}, fmt.Errorf("peer is %s, want %s: the endpoint serves another service", id, want)
	}
	return id, nil
}

// serverTLS is the inbound side of mesh mTLS: a client certificate is
// required and checked against the current roots and trust domain.
func (p *Proxy) serverTLS(nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: p.getCertificate,
		// Any certificate is requested here because the roots change at run
		// time; VerifyPeerCertificate does the full check.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := p.verifyPeer(raw, "")
			return err
		},
		// Resumed sessions skip VerifyPeerCertificate; every handshake is full.
		SessionTicketsDisabled: true,
		NextProtos:             nextProtos,
	}
}

// clientTLS is the outbound side of mesh mTLS. Hostnames mean nothing
// between sidecars, so the standard check is off and VerifyPeerCertificate
// does the whole verification: chain, trust domain, and the exact SPIFFE ID
// returned by want at handshake time.
func (p *Proxy) clientTLS(want func() string, nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: p.getClientCertificate,
		InsecureSkipVerify:   true, // replaced by VerifyPeerCertificate below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := p.verifyPeer(raw, want())
			return err
		},
		NextProtos: nextProtos,
	}
}
