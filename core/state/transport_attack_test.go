package state

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/spiffe"
)

// Hostile tests of the raft port (--raft-addr): what an attacker on the
// same network, or a sidecar of the mesh, can do with it. The replica is
// real (Open, raft, its TLS listener on loopback); each attack dials it
// as a client would. docs/ha-threats.md lists them.

const attackTD = "attack.test"

var controllerID = spiffe.Identity{TrustDomain: attackTD, Namespace: "weft-system", Service: "weft-controller"}

// attackReplica is a single-replica cluster on loopback and what an
// attacker may hold: the mesh CA's certificates for a sidecar and for
// the controller's identity, and keys.
type attackReplica struct {
	n         *Node
	addr      string
	key       []byte
	authority *ca.CA
	cert      tls.Certificate // the controller's own
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func openAttackReplica(t *testing.T) *attackReplica {
	t.Helper()
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.ServerCertificate(controllerID, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{0x42}, KeySize)
	r := &attackReplica{addr: freeLoopbackAddr(t), key: key, authority: authority, cert: cert}
	n, err := Open(Options{
		Dir: t.TempDir(), Addr: r.addr, BootstrapExpect: 1, Key: key,
		TLS:     PeerTLS{Certificate: func() (*tls.Certificate, error) { return &r.cert, nil }, Identity: controllerID.URL().String()},
		LocalCA: authority.State, OnCA: func(ca.State) {},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	r.n = n
	start := time.Now()
	for n.raft.State() != raft.Leader || !n.HasCA() {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the replica did not lead with a CA within 15s: %+v", n.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("single replica leading with its CA after %s", time.Since(start).Round(time.Millisecond))
	return r
}

// peer is a client that holds key and presents cert.
func (r *attackReplica) peer(key []byte, cert tls.Certificate) PeerTLS {
	return PeerTLS{Certificate: func() (*tls.Certificate, error) { return &cert, nil }, Identity: controllerID.URL().String(), key: derivePeerKey(key)}
}

// healthy asks the replica who it is as a legitimate peer would: it must
// answer after every attack.
func (r *attackReplica) healthy(t *testing.T) {
	t.Helper()
	start := time.Now()
	resp, err := r.n.call(r.addr, rpcRequest{Op: opInfo})
	if err != nil || resp.ID != r.n.ID() {
		t.Fatalf("a legitimate peer after the attack: %+v, %v; want the replica's answer", resp, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a legitimate peer was answered after %s, want within 5s", d)
	}
}

func selfSigned(t *testing.T, uri string) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "attacker"}, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// refusedWithin reads from c until the replica closes it, and fails if it
// sends anything (a proof, an answer) or keeps it open past the bound.
func refusedWithin(t *testing.T, c net.Conn, bound time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(bound))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the replica kept the connection open for %s", bound)
	}
	if len(b) > 0 {
		t.Fatalf("the replica answered %d bytes (%q) to a connection it should refuse", len(b), b[:min(len(b), 64)])
	}
	t.Logf("refused (closed) after %s", time.Since(start).Round(time.Millisecond))
}

// TestRaftPortAttack tries every spelling of an unwelcome peer on the raft
// port: each is closed without a byte of answer, and a legitimate peer is
// served after each.
func TestRaftPortAttack(t *testing.T) {
	r := openAttackReplica(t)
	sidecar, err := r.authority.ServerCertificate(spiffe.Identity{TrustDomain: attackTD, Namespace: "default", Service: "web"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate of the mesh CA for the controller's own identity: what
	// a workload would hold if the CA ever issued it (the mesh server
	// refuses to; core/meshserver TestJoinAttack).
	ctrlLookalike, err := r.authority.ServerCertificate(controllerID, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := bytes.Repeat([]byte{0x43}, KeySize)

	// dialTLS makes a TLS 1.3 handshake with cert (none if nil).
	dialTLS := func(t *testing.T, cert *tls.Certificate) *tls.Conn {
		t.Helper()
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c, err := tls.Dial("tcp", r.addr, cfg)
		if err != nil {
			t.Logf("handshake refused: %v", err)
			return nil
		}
		return c
	}
	// withProof is a connection that proved the state key as a peer.
	withProof := func(t *testing.T, kind byte) *tls.Conn {
		t.Helper()
		c, err := dialPeer(r.addr, 5*time.Second, r.peer(r.key, r.cert), kind)
		if err != nil {
			t.Fatalf("a peer with the key: %v", err)
		}
		return c
	}
	frame := func(size uint32, body []byte) []byte {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], size)
		return append(n[:], body...)
	}
	rpc := func(t *testing.T, raw []byte) {
		t.Helper()
		c := withProof(t, connRPC)
		defer c.Close()
		if _, err := c.Write(raw); err != nil {
			t.Logf("write: %v", err)
		}
		refusedWithin(t, c, 10*time.Second)
	}

	for _, tc := range []struct {
		name string
		try  func(t *testing.T)
	}{
		{"plain TCP, an HTTP request", func(t *testing.T) {
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			refusedWithin(t, c, 5*time.Second)
		}},
		{"plain TCP, raft's own RPC bytes", func(t *testing.T) {
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// rpcAppendEntries and the start of its msgpack map, as
			// hashicorp/raft's own transport writes them. (Fewer than the 5
			// bytes of a TLS record header wait for the handshake bound:
			// TestRaftPortSlowloris.)
			c.Write([]byte{0, 0x8a, 0xa4, 'T', 'e', 'r', 'm', 0x01})
			refusedWithin(t, c, 5*time.Second)
		}},
		{"TLS 1.2 only", func(t *testing.T) {
			_, err := tls.Dial("tcp", r.addr, &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: []tls.Certificate{r.cert}})
			if err == nil {
				t.Fatal("a TLS 1.2 handshake succeeded")
			}
		}},
		{"TLS without a client certificate", func(t *testing.T) {
			if c := dialTLS(t, nil); c != nil {
				defer c.Close()
				refusedWithin(t, c, 5*time.Second)
			}
		}},
		{"a sidecar's certificate from the mesh CA", func(t *testing.T) {
			if c := dialTLS(t, &sidecar); c != nil {
				defer c.Close()
				c.Write(make([]byte, proofSize+1))
				refusedWithin(t, c, 5*time.Second)
			}
		}},
		{"a sidecar's certificate, with the state key's proof", func(t *testing.T) {
			// Even a holder of the key is refused with a certificate that
			// is not a controller's.
			if _, err := dialPeer(r.addr, 5*time.Second, r.peer(r.key, sidecar), connRPC); err == nil {
				t.Fatal("a sidecar's certificate with the key's proof was admitted")
			}
		}},
		{"a self-signed certificate naming the controller, no key", func(t *testing.T) {
			c := dialTLS(t, ptr(selfSigned(t, controllerID.URL().String())))
			if c == nil {
				t.Fatal("the handshake was refused: the proof, not the chain, is what refuses it; see the next case")
			}
			defer c.Close()
			c.Write(append(make([]byte, proofSize), connRPC))
			refusedWithin(t, c, 5*time.Second)
		}},
		{"the mesh CA's certificate for the controller's identity, another key", func(t *testing.T) {
			if _, err := dialPeer(r.addr, 5*time.Second, r.peer(otherKey, ctrlLookalike), connRPC); err == nil || !strings.Contains(err.Error(), "proof") {
				t.Fatalf("got %v, want refused for its proof", err)
			}
		}},
		{"a proof replayed from another session", func(t *testing.T) {
			// A genuine peer's proof, seen on one connection (the attacker
			// records the plaintext, say from a compromised peer's log).
			p := r.peer(r.key, r.cert)
			c1, err := tls.Dial("tcp", r.addr, p.client())
			if err != nil {
				t.Fatal(err)
			}
			proof, err := p.proof(c1.ConnectionState(), "client")
			c1.Close()
			if err != nil {
				t.Fatal(err)
			}
			c2 := dialTLS(t, &r.cert)
			if c2 == nil {
				t.Fatal("handshake refused")
			}
			defer c2.Close()
			c2.Write(append(proof, connRPC))
			refusedWithin(t, c2, 5*time.Second)
		}},
		{"the server's proof reflected as the client's", func(t *testing.T) {
			p := r.peer(r.key, r.cert)
			c := dialTLS(t, &r.cert)
			if c == nil {
				t.Fatal("handshake refused")
			}
			defer c.Close()
			// The role is in the HMAC: the proof a server would give on
			// this very session is not a client's.
			mine, err := p.proof(c.ConnectionState(), "server")
			if err != nil {
				t.Fatal(err)
			}
			c.Write(append(mine, connRPC))
			refusedWithin(t, c, 5*time.Second)
		}},
		{"an unknown connection kind after a good proof", func(t *testing.T) {
			c := withProof(t, 'X')
			defer c.Close()
			refusedWithin(t, c, 5*time.Second)
		}},
		{"a frame announcing 4 GiB", func(t *testing.T) { rpc(t, frame(0xffffffff, nil)) }},
		{"a frame one byte over the limit", func(t *testing.T) { rpc(t, frame(maxFrame+1, nil)) }},
		// A proven peer that stops mid-frame is cut at the request's bound
		// (rpcTimeout and a second).
		{"a frame shorter than it says", func(t *testing.T) { rpc(t, frame(100, []byte(`{"op":"info"`))) }},
		{"garbage after the handshake", func(t *testing.T) { rpc(t, frame(8, []byte("\x00\x01garbage"))) }},
		{"JSON nested 10,000 deep", func(t *testing.T) {
			deep := strings.Repeat(`{"op":`, 10000) + `"info"` + strings.Repeat("}", 10000)
			rpc(t, frame(uint32(len(deep)), []byte(deep)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.try(t)
			r.healthy(t)
		})
	}

	// What a peer with the key may ask is answered, and what it may not is
	// refused with a reason (not a crash).
	for _, tc := range []struct {
		name string
		req  rpcRequest
		want string
	}{
		{"unknown op", rpcRequest{Op: "../../etc/passwd"}, "unknown request"},
		{"peer message of no kind", rpcRequest{Op: opPeer, Kind: "relay/v0"}, "no handler"},
		{"add_voter without an id", rpcRequest{Op: opAddVoter, Addr: "127.0.0.1:1"}, "needs an id"},
		{"add_voter with a 1 KiB id", rpcRequest{Op: opAddVoter, ID: strings.Repeat("a", 1024), Addr: "127.0.0.1:1"}, "needs an id"},
		{"apply garbage", rpcRequest{Op: opApply, Cmd: []byte{0xff, '{'}}, ""},
	} {
		t.Run("peer "+tc.name, func(t *testing.T) {
			resp, err := r.n.call(r.addr, tc.req)
			if tc.want == "" {
				// A command the FSM cannot read is committed and refused by
				// every replica alike; the answer carries the refusal.
				if err != nil || resp.Result.OK {
					t.Fatalf("got %+v, %v; want a refusal in the result", resp, err)
				}
				t.Logf("refused: %q", resp.Result.Err)
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want an error with %q", resp, err, tc.want)
			}
			r.healthy(t)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestRaftPortSlowloris holds connections that never finish their
// handshake or proof: each is closed at handshakeTimeout, and a peer is
// served meanwhile.
func TestRaftPortSlowloris(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = time.Second
	t.Cleanup(func() { handshakeTimeout = old })
	r := openAttackReplica(t)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i, stage := range []string{"silent", "half a ClientHello", "handshake, no proof", "proof one byte a time"} {
		// Each stage from an address of its own, 50 (under the 64 that
		// may be proving at once from one address).
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}}
		for range 50 {
			c, err := d.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			switch stage {
			case "half a ClientHello":
				c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
			case "handshake, no proof", "proof one byte a time":
				tc := tls.Client(c, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{r.cert}})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				if stage == "proof one byte a time" {
					tc.Write([]byte{0})
				}
				conns[len(conns)-1] = tc
			}
		}
	}
	r.healthy(t)
	// Every one of them is closed within the bound (1s, and scheduling).
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				open++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d slow connections were still open after 5s (handshake bound 1s)", open, len(conns))
	}
	t.Logf("all %d slow connections closed within %s of the check", len(conns), time.Since(start).Round(time.Millisecond))
	r.healthy(t)

	// From one address, 100 silent connections: 64 may prove who they
	// are; the others are closed at once, and a peer from another
	// address is served meanwhile.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 20)}}
	var over []net.Conn
	defer func() {
		for _, c := range over {
			c.Close()
		}
	}()
	for range 100 {
		c, err := d.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		over = append(over, c)
	}
	start = time.Now()
	for {
		r.n.mux.pendingMu.Lock()
		held := r.n.mux.pending["127.0.0.20"]
		r.n.mux.pendingMu.Unlock()
		if held == maxPendingPerSource {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d connections from one address proving at once after 5s, want %d", held, maxPendingPerSource)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.healthy(t)
	t.Logf("%d of 100 connections from one address held, the rest closed at accept, a peer served (%s)", maxPendingPerSource, time.Since(start).Round(time.Millisecond))
}

// TestRaftPortFlood opens many connections that never speak: the replica
// keeps serving its peers, and what each costs it is printed.
func TestRaftPortFlood(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(2*n+512) {
		// Both ends are in this process.
		n = int(lim.Cur-512) / 2
	}
	r := openAttackReplica(t)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range n {
		// From many loopback sources, as a botnet would: 60 each, under
		// the 64 one address may hold proving who it is.
		k := i / 60
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+k/250), byte(1+k%250))}}
		c, err := d.Dial("tcp", r.addr)
		if err != nil {
			t.Logf("dial %d: %v (stopping the flood there)", i, err)
			break
		}
		conns = append(conns, c)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%d idle connections opened in %s; this process (both ends) holds %d more goroutines and %.1f MiB more heap",
		len(conns), time.Since(start).Round(time.Millisecond), runtime.NumGoroutine()-g0, float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20))
	if len(conns) < n/2 {
		t.Fatalf("only %d of %d flood connections opened: the replica was not flooded, so its health below proves nothing", len(conns), n)
	}
	r.healthy(t)
}

// errListener fails its first Accepts as a process out of file
// descriptors does.
type errListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *errListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestRaftPortOutOfFiles: a replica whose accept fails (EMFILE under a
// flood) used to stop listening for its peers for good; it keeps
// accepting once the flood ebbs.
func TestRaftPortOutOfFiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.ServerCertificate(controllerID, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{1}, KeySize)
	p := PeerTLS{Certificate: func() (*tls.Certificate, error) { return &cert, nil }, Identity: controllerID.URL().String(), key: derivePeerKey(key)}
	m := newMux(&errListener{Listener: ln, fails: 5}, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	served := make(chan struct{}, 1)
	m.serveRPC = func(c net.Conn) { c.Close(); served <- struct{}{} }
	go m.run()
	defer m.Close()
	start := time.Now()
	c, err := dialPeer(ln.Addr().String(), 5*time.Second, p, connRPC)
	if err != nil {
		t.Fatalf("a peer after 5 failed accepts: %v", err)
	}
	c.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the peer's request was not served within 5s")
	}
	t.Logf("served after 5 failed accepts in %s", time.Since(start).Round(time.Millisecond))
}

// TestStateKeyFileAttack: key files a careless operator could give.
func TestStateKeyFileAttack(t *testing.T) {
	dir := t.TempDir()
	good := "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=" // 32 bytes, base64
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"good", write("good", []byte(good+"\n"), 0o600), ""},
		{"readable by all", write("world", []byte(good), 0o644), "readable by others"},
		{"readable by the group", write("group", []byte(good), 0o640), "readable by others"},
		{"1 MiB", write("big", bytes.Repeat([]byte("A"), 1<<20), 0o600), "larger than"},
		{"16 bytes", write("short", []byte("QkJCQkJCQkJCQkJCQkJCQg=="), 0o600), "want 32 bytes"},
		{"raw bytes", write("raw", bytes.Repeat([]byte{0xb2}, 32), 0o600), "want 32 bytes"},
		{"empty", write("empty", nil, 0o600), "want 32 bytes"},
		{"a FIFO no one writes", fifo, "not a regular file"},
		{"a directory", sub, "not a regular file"},
		{"missing", filepath.Join(dir, "none"), "make one with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := ReadKeyFile(tc.path); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("reading the key file did not return within 5s")
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want the key", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
