package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
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
	id, err := spiffe.VerifyPeer(raw, c.Roots, p.trustDomain(), peerClock())
	if err != nil {
		return spiffe.Identity{}, err
	}
	if want != "" && id.String() != want {
		return spiffe.Identity{}, fmt.Errorf("peer is %s, want %s: the endpoint serves another service", id, want)
	}
	return id, nil
}

// Session resumption between mesh peers. A full mTLS handshake costs
// each side a signature and the check of the other's chain; a resumed
// TLS 1.3 session (a ticket the server issued on an earlier full
// handshake) costs neither, and Go keeps the peer's certificates in the
// session, so the callee still knows the caller's identity. What a
// resumed session may not do is outlive what the full handshake proved:
//
//   - every handshake, full or resumed, ends in verifyConn
//     (VerifyConnection runs on resumed handshakes too, where
//     VerifyPeerCertificate does not): the peer's chain against the
//     roots held now, the trust domain, the identity wanted now, and the
//     time now, so an expired certificate or one from a root rotated out
//     ends the handshake whatever a ticket says;
//   - a server's ticket carries the generation of the credentials it was
//     issued under and the earliest expiry of the client's chain
//     (wrapSession); a ticket from other credentials (a renewal, new
//     roots) or past that expiry is ignored (unwrapSession) and the
//     client gets a full handshake instead of an error;
//   - a client's cache of sessions (sessionCache) is emptied when its
//     credentials change, so that its next connections present the new
//     certificate.
//
// A ticket's own lifetime (Go's, at most 7 days) thus never matters: the
// certificates (24 h by default) and the roots bound it.

// peerClock is the time peers' certificates are checked at (tests move
// it past a certificate's expiry).
var peerClock = time.Now

// verifyConn checks the peer of a handshake, full or resumed: its chain
// against the current roots and trust domain, at the current time, and
// its SPIFFE ID against want when not empty. A chain this config has
// verified under the same credentials is not verified again until its
// earliest expiry (verifiedChains): the result would be the same.
func (p *Proxy) verifyConn(cs tls.ConnectionState, want string, vc *verifiedChains) error {
	c := p.creds.Load()
	if c == nil {
		return errors.New("the sidecar holds no roots yet to verify peers with")
	}
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("the peer presented no certificate")
	}
	id, ok := vc.get(c.Generation(), certs, peerClock())
	if !ok {
		raw := make([][]byte, len(certs))
		for i, pc := range certs {
			raw[i] = pc.Raw
		}
		var err error
		if id, err = p.verifyPeer(raw, ""); err != nil {
			return err
		}
		vc.put(c.Generation(), certs, id)
	}
	if td := p.trustDomain(); id.TrustDomain != td {
		return fmt.Errorf("peer identity %s is not in trust domain %q", id, td)
	}
	if want != "" && id.String() != want {
		return fmt.Errorf("peer is %s, want %s: the endpoint serves another service", id, want)
	}
	return nil
}

// verifiedChains are the peer chains a TLS config verified under the
// credentials of generation gen, by their bytes, with the identity in
// each and the earliest NotAfter of its certificates.
type verifiedChains struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]verifiedChain
}

type verifiedChain struct {
	id       spiffe.Identity
	notAfter time.Time
}

// maxVerifiedChains bounds a config's verifiedChains (then it starts
// over).
const maxVerifiedChains = 1024

func chainKey(certs []*x509.Certificate) string {
	n := 0
	for _, c := range certs {
		n += len(c.Raw) + 4
	}
	b := make([]byte, 0, n)
	for _, c := range certs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.Raw)))
		b = append(b, c.Raw...)
	}
	return string(b)
}

func (vc *verifiedChains) get(gen uint64, certs []*x509.Certificate, now time.Time) (spiffe.Identity, bool) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.gen != gen {
		return spiffe.Identity{}, false
	}
	v, ok := vc.m[chainKey(certs)]
	if !ok || !now.Before(v.notAfter) {
		return spiffe.Identity{}, false
	}
	return v.id, true
}

func (vc *verifiedChains) put(gen uint64, certs []*x509.Certificate, id spiffe.Identity) {
	notAfter := certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.gen != gen || vc.m == nil || len(vc.m) >= maxVerifiedChains {
		vc.gen, vc.m = gen, map[string]verifiedChain{}
	}
	vc.m[chainKey(certs)] = verifiedChain{id: id, notAfter: notAfter}
}

// sessionExtra marks the data a mesh server puts in its tickets.
const sessionExtra = "weft-session-1"

// wrapSession is a mesh server's ticket: the session with the generation
// of the credentials in force and the earliest NotAfter of the client's
// chain, encrypted with the config's ticket keys.
func (p *Proxy) wrapSession(cfg *tls.Config, cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	c := p.creds.Load()
	if c == nil || len(cs.PeerCertificates) == 0 {
		return nil, errors.New("issuing a session ticket: no credentials or no client certificate")
	}
	notAfter := cs.PeerCertificates[0].NotAfter
	for _, pc := range cs.PeerCertificates[1:] {
		if pc.NotAfter.Before(notAfter) {
			notAfter = pc.NotAfter
		}
	}
	b := make([]byte, 0, len(sessionExtra)+16)
	b = append(b, sessionExtra...)
	b = binary.BigEndian.AppendUint64(b, c.Generation())
	b = binary.BigEndian.AppendUint64(b, uint64(notAfter.Unix()))
	ss.Extra = append(ss.Extra, b)
	return cfg.EncryptTicket(cs, ss)
}

// unwrapSession opens a ticket a mesh client offers: a ticket this
// server did not issue, issued under other credentials, or whose
// client chain has expired is ignored (nil, nil: a full handshake).
func (p *Proxy) unwrapSession(cfg *tls.Config, identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, err := cfg.DecryptTicket(identity, cs)
	if err != nil || ss == nil {
		return nil, nil // not ours, or unreadable: a full handshake
	}
	c := p.creds.Load()
	if c == nil {
		return nil, nil
	}
	for _, e := range ss.Extra {
		if len(e) != len(sessionExtra)+16 || string(e[:len(sessionExtra)]) != sessionExtra {
			continue
		}
		gen := binary.BigEndian.Uint64(e[len(sessionExtra):])
		notAfter := int64(binary.BigEndian.Uint64(e[len(sessionExtra)+8:]))
		if gen == c.Generation() && peerClock().Unix() < notAfter {
			return ss, nil
		}
		return nil, nil
	}
	return nil, nil
}

// sessionCache is a mesh client's cache of sessions, emptied when the
// proxy's credentials change. One config (one upstream and protocol)
// has one, keyed by the peer's address.
type sessionCache struct {
	p   *Proxy
	mu  sync.Mutex
	gen uint64
	lru tls.ClientSessionCache
}

// sessionCacheSize is how many peers a client config keeps sessions for.
const sessionCacheSize = 128

func (s *sessionCache) current() tls.ClientSessionCache {
	var gen uint64
	if c := s.p.creds.Load(); c != nil {
		gen = c.Generation()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lru == nil || s.gen != gen {
		s.lru, s.gen = tls.NewLRUClientSessionCache(sessionCacheSize), gen
	}
	return s.lru
}

func (s *sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	return s.current().Get(key)
}

func (s *sessionCache) Put(key string, cs *tls.ClientSessionState) {
	s.current().Put(key, cs)
}

// serverTLS is the inbound side of mesh mTLS: a client certificate is
// required and checked against the current roots and trust domain, on
// every handshake, full or resumed (verifyConn); tickets are issued and
// taken as described above.
func (p *Proxy) serverTLS(nextProtos []string) *tls.Config {
	vc := &verifiedChains{}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: p.getCertificate,
		// Any certificate is requested here because the roots change at run
		// time; VerifyConnection does the full check.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return p.verifyConn(cs, "", vc)
		},
		SessionTicketsDisabled: !p.resumption(),
		NextProtos:             nextProtos,
	}
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		return p.wrapSession(cfg, cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		return p.unwrapSession(cfg, identity, cs)
	}
	return cfg
}

// clientTLS is the outbound side of mesh mTLS. Hostnames mean nothing
// between sidecars, so the standard check is off and VerifyConnection
// does the whole verification, on every handshake, full or resumed:
// chain, trust domain, and the exact SPIFFE ID returned by want at
// handshake time.
func (p *Proxy) clientTLS(want func() string, nextProtos []string) *tls.Config {
	vc := &verifiedChains{}
	cfg := &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: p.getClientCertificate,
		InsecureSkipVerify:   true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			return p.verifyConn(cs, want(), vc)
		},
		NextProtos: nextProtos,
	}
	if p.resumption() {
		cfg.ClientSessionCache = &sessionCache{p: p}
	}
	return cfg
}

// envTLSResumption names the environment variable that turns session
// resumption between mesh peers off ("off"); it is on otherwise.
const envTLSResumption = "WEFT_TLS_RESUMPTION"

// resumption reports whether mesh mTLS resumes sessions.
func (p *Proxy) resumption() bool { return os.Getenv(envTLSResumption) != "off" }
