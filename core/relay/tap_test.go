package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/spiffe"
)

// tapNet joins replicas' Taps in memory: SendPeer and SendPeers call the
// other side's Receive, as core/state's peer messages do over TLS.
type tapNet struct {
	mu    sync.Mutex
	taps  map[string]*Taps
	drop  func(from, to string, m tapMessage) bool // true: the message is lost
	block chan struct{}                            // non-nil: an events message waits for it
}

type tapPeer struct {
	n    *tapNet
	addr string
}

func (p tapPeer) Addr() string { return p.addr }

func (p tapPeer) SendPeers(kind string, body []byte) error {
	p.n.mu.Lock()
	var to []string
	for a := range p.n.taps {
		if a != p.addr {
			to = append(to, a)
		}
	}
	p.n.mu.Unlock()
	var errs []error
	for _, a := range to {
		errs = append(errs, p.SendPeer(a, kind, body))
	}
	return errors.Join(errs...)
}

func (p tapPeer) SendPeer(addr, kind string, body []byte) error {
	if kind != TapKind {
		return fmt.Errorf("kind %q", kind)
	}
	var m tapMessage
	_ = json.Unmarshal(body, &m)
	p.n.mu.Lock()
	t, drop, block := p.n.taps[addr], p.n.drop, p.n.block
	p.n.mu.Unlock()
	if drop != nil && drop(p.addr, addr, m) {
		return fmt.Errorf("peer %s: unreachable", addr)
	}
	if block != nil && m.Op == "events" {
		<-block
	}
	return t.Receive(body)
}

// recordingLocal is a replica's real meshserver tap hub that keeps the
// sessions it started, so that a test can play a sidecar's events into
// them.
type recordingLocal struct {
	*meshserver.Server
	mu       sync.Mutex
	sessions []*meshserver.TapSession
}

func (l *recordingLocal) StartTap(q meshserver.TapQuery) (*meshserver.TapSession, error) {
	s, err := l.Server.StartTap(q)
	if err == nil {
		l.mu.Lock()
		l.sessions = append(l.sessions, s)
		l.mu.Unlock()
	}
	return s, err
}

func (l *recordingLocal) last() *meshserver.TapSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sessions) == 0 {
		return nil
	}
	return l.sessions[len(l.sessions)-1]
}

func newTapNet(t *testing.T, addrs ...string) (*tapNet, map[string]*recordingLocal) {
	t.Helper()
	n := &tapNet{taps: map[string]*Taps{}}
	locals := map[string]*recordingLocal{}
	for _, a := range addrs {
		locals[a] = &recordingLocal{Server: meshserver.New(meshserver.Options{})}
		n.taps[a] = NewTaps(TapOptions{Local: locals[a], Peers: tapPeer{n, a}, Every: 10 * time.Millisecond, Idle: 50 * time.Millisecond})
	}
	t.Cleanup(func() {
		for _, l := range locals {
			l.EndTaps()
		}
	})
	return n, locals
}

// waitFor waits (bounded) until cond holds, and says what it took.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() error) {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			t.Logf("%s after %s (bound %s)", what, time.Since(start).Round(time.Millisecond), bound)
			return
		}
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %s: %v", what, bound, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func legOf(t *testing.T, l *recordingLocal) *meshserver.TapSession {
	t.Helper()
	var s *meshserver.TapSession
	waitFor(t, "the peer to open its leg", 5*time.Second, func() error {
		if s = l.last(); s == nil {
			return errors.New("no leg")
		}
		return nil
	})
	return s
}

func webEvent(path string) meshserver.TapEvent {
	return meshserver.TapEvent{Instance: "web-1", Identity: spiffe.Identity{TrustDomain: "weft.test", Namespace: "default", Service: "web"},
		Event: &meshapi.TapEvent{Inbound: true, Method: "GET", Path: path, Status: 200, Caller: "spiffe://weft.test/ns/default/svc/client"}}
}

var webQuery = meshserver.TapQuery{Namespace: "default", Service: "web", Inbound: true, Outbound: true, MaxRPS: 100, Duration: time.Minute}

// A tap started on replica a gets the events and the joined sidecars of
// replica b's, and closing it ends b's leg.
func TestTapRelaysAPeersSidecars(t *testing.T) {
	n, locals := newTapNet(t, "a", "b")
	sess, err := n.taps["a"].StartTap(webQuery)
	if err != nil {
		t.Fatal(err)
	}
	leg := legOf(t, locals["b"])
	if got := n.taps["b"].TapReport(); got.Open != 1 || len(got.ForPeers) != 1 || got.ForPeers[0].Origin != "a" || got.ForPeers[0].Service != "web" {
		t.Fatalf("b's sessions: %+v; want one leg of a's tap of web", got)
	}
	leg.RelayedJoined("web-1")
	leg.Relayed(webEvent("/one"))
	select {
	case inst := <-sess.Joined:
		if inst != "web-1" {
			t.Errorf("joined %q, want web-1", inst)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's joined sidecar never reached a's tap (bound 5s)")
	}
	select {
	case ev := <-sess.Events:
		if ev.Instance != "web-1" || ev.Identity.Service != "web" || ev.Event.GetPath() != "/one" || ev.Event.GetStatus() != 200 {
			t.Errorf("relayed event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's event never reached a's tap (bound 5s)")
	}
	sess.Close()
	waitFor(t, "every session closed on both replicas", 5*time.Second, func() error {
		for _, a := range []string{"a", "b"} {
			if r := n.taps[a].TapReport(); r.Open != 0 || r.Started != 0 || len(r.ForPeers) != 0 {
				return fmt.Errorf("replica %s: %+v", a, r)
			}
		}
		return nil
	})
}

// A leg whose origin's close never arrived ends at its next message: the
// origin answers that the tap is gone.
func TestTapLegEndsWhenTheOriginForgot(t *testing.T) {
	n, locals := newTapNet(t, "a", "b")
	n.drop = func(from, to string, m tapMessage) bool { return m.Op == "close" }
	sess, err := n.taps["a"].StartTap(webQuery)
	if err != nil {
		t.Fatal(err)
	}
	legOf(t, locals["b"])
	sess.Close()
	waitFor(t, "b's leg to end without the close message", 5*time.Second, func() error {
		if r := n.taps["b"].TapReport(); r.Open != 0 || len(r.ForPeers) != 0 {
			return fmt.Errorf("b: %+v", r)
		}
		return nil
	})
}

// A leg whose origin cannot be reached gives up after legFailures sends.
func TestTapLegEndsWhenTheOriginIsUnreachable(t *testing.T) {
	n, locals := newTapNet(t, "a", "b")
	if _, err := n.taps["a"].StartTap(webQuery); err != nil {
		t.Fatal(err)
	}
	legOf(t, locals["b"])
	n.mu.Lock()
	n.drop = func(from, to string, m tapMessage) bool { return to == "a" }
	n.mu.Unlock()
	waitFor(t, "b's leg to end with a unreachable", 5*time.Second, func() error {
		if r := n.taps["b"].TapReport(); r.Open != 0 {
			return fmt.Errorf("b: %+v", r)
		}
		return nil
	})
}

// While the origin is slow to take a message, the leg's sidecars' events
// are dropped and counted, not queued: the origin gets at most what one
// session buffer and one message hold, and hears of every drop.
func TestTapLegDropsWhileTheOriginIsSlow(t *testing.T) {
	n, locals := newTapNet(t, "a", "b")
	sess, err := n.taps["a"].StartTap(webQuery)
	if err != nil {
		t.Fatal(err)
	}
	leg := legOf(t, locals["b"])
	block := make(chan struct{})
	n.mu.Lock()
	n.block = block
	n.mu.Unlock()
	leg.Relayed(webEvent("/first")) // the leg's next send waits on block
	const sent = 5 * meshserver.TapSessionBuffer
	for i := range sent - 1 {
		leg.Relayed(webEvent(fmt.Sprint("/", i)))
	}
	n.mu.Lock()
	n.block = nil
	n.mu.Unlock()
	close(block)
	var got int
	waitFor(t, "a's tap to account for every event b's sidecars saw", 5*time.Second, func() error {
		for {
			select {
			case <-sess.Events:
				got++
				continue
			default:
			}
			break
		}
		if uint64(got)+sess.Dropped() != sent {
			return fmt.Errorf("%d received + %d dropped, want %d", got, sess.Dropped(), sent)
		}
		return nil
	})
	t.Logf("%d events sent while a was slow: %d received, %d dropped", sent, got, sess.Dropped())
	if got > 2*meshserver.TapSessionBuffer+1 {
		t.Errorf("a received %d events, more than two session buffers and the first: events were queued", got)
	}
	if sess.Dropped() == 0 {
		t.Error("nothing dropped though a took nothing while 5 buffers' worth came")
	}
}

func TestTapReceiveRefuses(t *testing.T) {
	n, _ := newTapNet(t, "a")
	for _, tc := range []struct{ name, body, want string }{
		{"not json", `{`, "decoding a tap message"},
		{"no origin", `{"op":"open","id":1}`, "without its origin"},
		{"unknown op", `{"op":"poke","origin":"b","id":1}`, `op "poke"`},
		{"open without query", `{"op":"open","origin":"b","id":1}`, "without its query"},
		{"no rate", `{"op":"open","origin":"b","id":1,"query":{"Service":"web","Duration":1000000000}}`, "max_rps 0"},
		{"long name", `{"op":"open","origin":"b","id":1,"query":{"Service":"` + strings.Repeat("w", 300) + `","MaxRPS":1,"Duration":1000000000}}`, "over 253"},
		{"events of no tap", `{"op":"events","origin":"a","id":42}`, tapGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n.taps["a"].Receive([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Receive(%s) = %v, want an error with %q", tc.body, err, tc.want)
			}
		})
	}
}
