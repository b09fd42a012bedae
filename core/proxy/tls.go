package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/weftmesh/weft/core/spiffe"
)

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
