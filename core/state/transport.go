package state

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/weftmesh/weft/core/inputlimit"
)

// One TCP port per replica (--raft-addr) carries both raft's own traffic
// and the replicas' requests to one another (forward.go), each connection
// over mutual TLS with the controllers' own certificates: after the
// handshake the dialer sends one byte, connRaft or connRPC.
const (
	connRaft byte = 'R'
	connRPC  byte = 'F'
)

// handshakeTimeout bounds a peer's TLS handshake and its proof: a
// connection that has not proven the state key within it is closed. A
// variable so that the hostile tests need not wait 10 s.
var handshakeTimeout = 10 * time.Second

// acceptBackoffMax bounds the pause after an accept that failed for
// another reason than the listener closing (out of file descriptors under
// a flood of connections): the replica keeps accepting once the flood
// ebbs, as net/http's server does.
const acceptBackoffMax = time.Second

// PeerTLS is how replicas prove to one another that they belong to the
// cluster: each presents its own certificate (the one its APIs serve,
// whose URI SAN must be the controllers' identity) in a TLS 1.3
// handshake, and then both prove that they hold the state key: each sends
// an HMAC, keyed from the state key, of keying material exported from
// that very TLS session (RFC 5705), so a proof cannot be replayed on
// another connection. The state key, not the CA, is what admits a peer:
// replicas forming a new cluster may each have created a CA of their own
// before the leader's becomes the cluster's (and every replica takes it).
type PeerTLS struct {
	// Certificate is the replica's own certificate, as its APIs serve it.
	Certificate func() (*tls.Certificate, error)
	// Identity is the URI every controller's certificate carries
	// (spiffe://<trust domain>/ns/weft-system/svc/controller).
	Identity string

	key []byte // derived from the state key (Open sets it)
}

// proofSize is the size of a peer's proof: an HMAC-SHA256.
const proofSize = sha256.Size

func (p PeerTLS) proof(cs tls.ConnectionState, role string) ([]byte, error) {
	ekm, err := cs.ExportKeyingMaterial("EXPORTER-weft-raft-peer", nil, 32)
	if err != nil {
		return nil, fmt.Errorf("exporting TLS keying material: %w", err)
	}
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(role))
	m.Write(ekm)
	return m.Sum(nil), nil
}

func derivePeerKey(stateKey []byte) []byte {
	m := hmac.New(sha256.New, stateKey)
	m.Write([]byte("weft raft peer key v1"))
	return m.Sum(nil)
}

// errBadProof is what a peer without the state key gets.
var errBadProof = errors.New("the peer does not hold this cluster's state key: every replica needs the same --state-key-file")

func (p PeerTLS) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if !slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == p.Identity }) {
		return fmt.Errorf("the peer's certificate is not a controller's of this trust domain (want URI SAN %s)", p.Identity)
	}
	return nil
}

func (p PeerTLS) server() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		ClientAuth:       tls.RequireAnyClientCert,
		GetCertificate:   func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.Certificate() },
		VerifyConnection: p.verify,
	}
}

func (p PeerTLS) client() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Neither the chain nor the host name is checked: a replica is
		// dialled at whatever address the cluster knows it by, and replicas
		// forming a cluster hold different candidate CAs. verify checks the
		// identity the certificate names; the proof of the state key after
		// the handshake is what admits a peer (a self-signed certificate
		// naming the controller gets no further: TestRaftPortAttack).
		InsecureSkipVerify:   true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return p.Certificate() },
		VerifyConnection:     p.verify,
	}
}

// mux accepts the replica's port: raft's connections go to Accept,
// requests to serveRPC.
type mux struct {
	ln       net.Listener
	tls      PeerTLS
	log      *slog.Logger
	serveRPC func(net.Conn)
	raftConn chan net.Conn
	done     chan struct{}
	once     sync.Once
	// refused throttles the log of refused peers: a line per address a
	// minute.
	refusedMu sync.Mutex
	refused   map[string]time.Time
	// acceptLogged is when a failed accept was last logged (run's own).
	acceptLogged time.Time
	// pending counts, by source address, the connections that have not
	// proven the state key yet (admit).
	pendingMu sync.Mutex
	pending   map[string]int
}

func newMux(ln net.Listener, p PeerTLS, log *slog.Logger) *mux {
	return &mux{ln: ln, tls: p, log: log, raftConn: make(chan net.Conn), done: make(chan struct{}), refused: map[string]time.Time{}, pending: map[string]int{}}
}

func (m *mux) run() {
	var pause time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors (EMFILE, ENFILE), a connection reset
			// before it was accepted: never a reason to stop listening for
			// the peers for good.
			pause = min(max(2*pause, 5*time.Millisecond), acceptBackoffMax)
			if time.Since(m.acceptLogged) > time.Minute {
				m.acceptLogged = time.Now()
				m.log.Error("raft: accepting peer connections failed; retrying (a flood of connections, or too low a file descriptor limit: ulimit -n)", "err", err)
			}
			select {
			case <-m.done:
				return
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		go m.handle(c)
	}
}

func (m *mux) handle(c net.Conn) {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	if !m.admit(host) {
		m.logRefused(c.RemoteAddr().String(), fmt.Errorf("more than %d connections from this address are proving who they are", maxPendingPerSource))
		c.Close()
		return
	}
	proven := m.proving(host)
	defer proven()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	tc := tls.Server(c, m.tls.server())
	if err := tc.Handshake(); err != nil {
		m.logRefused(c.RemoteAddr().String(), err)
		c.Close()
		return
	}
	var hello [proofSize + 1]byte
	if _, err := io.ReadFull(tc, hello[:]); err != nil {
		tc.Close()
		return
	}
	cs := tc.ConnectionState()
	want, err := m.tls.proof(cs, "client")
	if err != nil || !hmac.Equal(want, hello[:proofSize]) {
		m.logRefused(c.RemoteAddr().String(), errBadProof)
		tc.Close()
		return
	}
	mine, err := m.tls.proof(cs, "server")
	if err != nil {
		tc.Close()
		return
	}
	if _, err := tc.Write(mine); err != nil {
		tc.Close()
		return
	}
	kind := hello[proofSize:]
	_ = c.SetDeadline(time.Time{})
	proven()
	switch kind[0] {
	case connRaft:
		select {
		case m.raftConn <- tc:
		case <-m.done:
			tc.Close()
		}
	case connRPC:
		m.serveRPC(tc)
	default:
		tc.Close()
	}
}

// maxPendingPerSource bounds the connections from one address that have
// not proven the state key yet: a replica holds a few at a time (raft's
// pool of 3, a forwarded request, a relay message), an attacker's
// slowloris from one address holds no more than this, each for at most
// handshakeTimeout.
const maxPendingPerSource = 64

// admit counts a connection from host as proving who it is, unless host
// has maxPendingPerSource such connections already.
func (m *mux) admit(host string) bool {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	if m.pending[host] >= maxPendingPerSource {
		return false
	}
	m.pending[host]++
	return true
}

// proving returns the function that ends what admit counted: called once
// the peer has proven the key, and (deferred) when handle returns.
func (m *mux) proving(host string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			m.pendingMu.Lock()
			if m.pending[host]--; m.pending[host] <= 0 {
				delete(m.pending, host)
			}
			m.pendingMu.Unlock()
		})
	}
}

func (m *mux) logRefused(addr string, err error) {
	host, _, _ := net.SplitHostPort(addr)
	m.refusedMu.Lock()
	last := m.refused[host]
	log := time.Since(last) > time.Minute
	if log {
		if len(m.refused) > 1024 {
			clear(m.refused)
		}
		m.refused[host] = time.Now()
	}
	m.refusedMu.Unlock()
	if log {
		m.log.Warn("raft: refused a peer connection", "from", addr, "err", err)
	}
}

// Accept is raft's side of the listener.
func (m *mux) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConn:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *mux) Close() error {
	m.once.Do(func() { close(m.done); m.ln.Close() })
	return nil
}

func (m *mux) Addr() net.Addr { return m.ln.Addr() }

// Dial is raft's dialer: a TLS connection to a peer that says it is raft's.
func (m *mux) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialPeer(string(addr), timeout, m.tls, connRaft)
}

func dialPeer(addr string, timeout time.Duration, p PeerTLS, kind byte) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, p.client())
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	cs := c.ConnectionState()
	mine, err := p.proof(cs, "client")
	if err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Write(append(mine, kind)); err != nil {
		c.Close()
		return nil, err
	}
	theirs := make([]byte, proofSize)
	if _, err := io.ReadFull(c, theirs); err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the peer's proof (does it hold the same state key?): %w", err)
	}
	want, err := p.proof(cs, "server")
	if err != nil || !hmac.Equal(want, theirs) {
		c.Close()
		return nil, errBadProof
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// maxFrame bounds one request or answer between replicas: a command is at
// most maxCommandBytes.
const maxFrame = maxCommandBytes + 4096

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("a message of %d bytes, over the limit of %d", len(b), maxFrame)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readFrame(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return fmt.Errorf("a message of %d bytes, over the limit of %d", size, maxFrame)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	if err := inputlimit.JSONDepth(b, maxJSONDepth); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
