package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/spiffe"
)

// TapKind is the kind of the tap messages between replicas
// (state.HandlePeer).
const TapKind = "tap/v1"

// Tap relay bounds.
const (
	// maxLegs bounds the legs a replica runs for its peers' taps (each
	// is also one of its meshserver.MaxTapSessions).
	maxLegs = 4 * meshserver.MaxTapSessions
	// maxJoined bounds the sidecars named in one events message.
	maxJoined = 256
	// legFailures is how many sends in a row a leg may fail before it
	// gives up on an origin it cannot reach.
	legFailures = 3
	// tapGone is what an origin answers about a tap it no longer runs;
	// the leg that hears it ends.
	tapGone = "no such tap open here"
	// itemOverhead is a tap item's JSON beyond its event's bytes.
	itemOverhead = 512
)

// TapLocal is the replica's own tap hub (*meshserver.Server).
type TapLocal interface {
	StartTap(q meshserver.TapQuery) (*meshserver.TapSession, error)
	TapSessions() int
}

// TapPeers reaches the other replicas (core/state's Node).
type TapPeers interface {
	SendPeers(kind string, body []byte) error
	SendPeer(addr, kind string, body []byte) error
	Addr() string
}

// TapOptions configure Taps.
type TapOptions struct {
	Local TapLocal
	// Peers is nil on a controller without replicas: its taps stay
	// local.
	Peers TapPeers
	// MaxMessage bounds one message's body (state.MaxPeerMessage).
	MaxMessage int
	// Every is how often a leg sends what its sidecars saw to the
	// origin. 0: 200ms.
	Every time.Duration
	// Idle is the longest a leg stays silent: with nothing to send it
	// still tells the origin, which answers whether the tap runs. 0: 1s.
	Idle   time.Duration
	Logger *slog.Logger
}

// Taps runs `weft tap` across replicas; see the package doc. It is the
// admin API's Tapper (api.Options.Tap).
type Taps struct {
	o TapOptions

	mu      sync.Mutex
	origins map[uint64]*meshserver.TapSession // taps of this replica's admin API
	legs    map[legKey]*tapLeg                // legs run here for peers' taps
}

type legKey struct {
	origin string
	id     uint64
}

// tapLeg is a session opened here for a peer's tap.
type tapLeg struct {
	key     legKey
	service string
	sess    *meshserver.TapSession
	stopped chan struct{} // closed when the origin closes the tap
	once    sync.Once
}

// tapMessage is one message between replicas about a tap.
type tapMessage struct {
	// Op is "open" (origin to every peer: start a leg), "close" (origin
	// to every peer: end it) or "events" (a leg to its origin).
	Op     string `json:"op"`
	Origin string `json:"origin"` // the origin replica's raft address
	ID     uint64 `json:"id"`     // the session's ID at the origin
	// Query is the tap, with Duration what is left of it (open).
	Query *meshserver.TapQuery `json:"query,omitempty"`
	// events
	From    string    `json:"from,omitempty"` // the leg's replica
	Events  []tapItem `json:"events,omitempty"`
	Joined  []string  `json:"joined,omitempty"`
	Dropped uint64    `json:"dropped,omitempty"` // since the leg's last message
}

// tapItem is one event a leg's sidecar saw.
type tapItem struct {
	Instance    string `json:"instance"`
	TrustDomain string `json:"trust_domain"`
	Namespace   string `json:"namespace"`
	Service     string `json:"service"`
	// Event is the meshapi.TapEvent, protobuf.
	Event []byte `json:"event"`
}

// NewTaps returns the tap relay of a replica.
func NewTaps(o TapOptions) *Taps {
	if o.Every <= 0 {
		o.Every = 200 * time.Millisecond
	}
	if o.Idle <= 0 {
		o.Idle = time.Second
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 512 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Taps{o: o, origins: map[uint64]*meshserver.TapSession{}, legs: map[legKey]*tapLeg{}}
}

// StartTap starts a tap here and asks every peer replica to open a leg
// of it with its own sidecars; closing the session closes the legs.
func (t *Taps) StartTap(q meshserver.TapQuery) (*meshserver.TapSession, error) {
	sess, err := t.o.Local.StartTap(q)
	if err != nil || t.o.Peers == nil {
		return sess, err
	}
	t.mu.Lock()
	t.origins[sess.ID] = sess
	t.mu.Unlock()
	self := t.o.Peers.Addr()
	go func() {
		open := q
		open.Duration = time.Until(sess.End)
		if b, err := json.Marshal(tapMessage{Op: "open", Origin: self, ID: sess.ID, Query: &open}); err == nil {
			if err := t.o.Peers.SendPeers(TapKind, b); err != nil {
				t.o.Logger.Warn("tap: a peer replica did not open the tap; the requests of its sidecars are missing from it", "service", q.Service, "err", err)
			}
		}
		<-sess.Done()
		t.mu.Lock()
		delete(t.origins, sess.ID)
		t.mu.Unlock()
		if b, err := json.Marshal(tapMessage{Op: "close", Origin: self, ID: sess.ID}); err == nil {
			if err := t.o.Peers.SendPeers(TapKind, b); err != nil {
				t.o.Logger.Debug("tap: a peer replica did not hear the tap's end (its leg ends when the tap's events find no taker)", "err", err)
			}
		}
	}()
	return sess, nil
}

// Receive takes a tap message a peer replica sent (the handler of
// TapKind).
func (t *Taps) Receive(body []byte) error {
	var m tapMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("decoding a tap message: %w", err)
	}
	if m.Origin == "" || len(m.Origin) > 256 {
		return errors.New("a tap message without its origin replica")
	}
	switch m.Op {
	case "open":
		return t.open(m)
	case "close":
		t.mu.Lock()
		l := t.legs[legKey{m.Origin, m.ID}]
		t.mu.Unlock()
		if l != nil {
			l.once.Do(func() { close(l.stopped) })
			l.sess.Close()
		}
		return nil
	case "events":
		return t.events(m)
	}
	return fmt.Errorf("a tap message of op %q; want open, close or events", m.Op)
}

// open starts a leg of a peer's tap with this replica's sidecars.
func (t *Taps) open(m tapMessage) error {
	if m.Query == nil {
		return errors.New("a tap open message without its query")
	}
	q := *m.Query
	if q.Duration <= 0 {
		return nil // over already
	}
	if err := checkQuery(q); err != nil {
		return fmt.Errorf("opening a peer's tap: %w", err)
	}
	k := legKey{m.Origin, m.ID}
	t.mu.Lock()
	if _, ok := t.legs[k]; ok {
		t.mu.Unlock()
		return nil
	}
	if len(t.legs) >= maxLegs {
		t.mu.Unlock()
		return fmt.Errorf("this replica runs %d legs of peers' taps, the most it runs", maxLegs)
	}
	sess, err := t.o.Local.StartTap(q)
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("opening a peer's tap: %w", err)
	}
	l := &tapLeg{key: k, service: q.Service, sess: sess, stopped: make(chan struct{})}
	t.legs[k] = l
	t.mu.Unlock()
	go t.runLeg(l)
	return nil
}

// checkQuery bounds what a peer asks (it is authenticated, but a bug
// there must not cost this replica).
func checkQuery(q meshserver.TapQuery) error {
	for _, s := range []string{q.Namespace, q.Service, q.FromNamespace, q.From, q.To, q.Method} {
		if len(s) > 253 {
			return errors.New("a name over 253 bytes")
		}
	}
	if q.Service == "" {
		return errors.New("no service")
	}
	if len(q.PathPrefix) > 1024 {
		return errors.New("a path prefix over 1024 bytes")
	}
	if q.MaxRPS == 0 || q.MaxRPS > api.MaxTapRPS {
		return fmt.Errorf("max_rps %d, want 1 to %d", q.MaxRPS, api.MaxTapRPS)
	}
	return nil
}

// runLeg sends what the leg's sidecars see to the origin, every Every,
// until the leg's session ends or the origin no longer runs the tap.
// While a send is under way the session's channel fills and then drops
// (counted, and the count sent on): nothing queues behind a slow origin.
func (t *Taps) runLeg(l *tapLeg) {
	defer func() {
		l.sess.Close()
		t.mu.Lock()
		delete(t.legs, l.key)
		t.mu.Unlock()
	}()
	self := t.o.Peers.Addr()
	tick := time.NewTicker(t.o.Every)
	defer tick.Stop()
	var (
		msg      = tapMessage{Op: "events", Origin: l.key.origin, ID: l.key.id, From: self}
		size     int
		dropped  uint64 // here, the batch full
		reported uint64 // the session's and this leg's drops sent so far
		last     = time.Now()
		failures int
	)
	send := func() bool {
		now := l.sess.Dropped() + dropped
		msg.Dropped = now - reported
		b, err := json.Marshal(msg)
		msg.Events, msg.Joined, size, last = nil, nil, 0, time.Now()
		if err == nil {
			err = t.o.Peers.SendPeer(l.key.origin, TapKind, b)
		}
		if err == nil {
			reported, failures = now, 0
			return true
		}
		if strings.Contains(err.Error(), tapGone) {
			return false
		}
		if failures++; failures >= legFailures {
			t.o.Logger.Warn("tap: the replica that asked for a tap is unreachable; ending this replica's part of it", "origin", l.key.origin, "service", l.service, "err", err)
			return false
		}
		return true
	}
	for {
		select {
		case <-l.stopped:
			return
		case ev, ok := <-l.sess.Events:
			if !ok {
				select {
				case <-l.stopped:
				default:
					send() // the leg's end: what is left, and the drops
				}
				return
			}
			b, err := proto.Marshal(ev.Event)
			n := len(b)*4/3 + itemOverhead
			if err != nil || size+n > t.o.MaxMessage {
				dropped++
				continue
			}
			msg.Events = append(msg.Events, tapItem{Instance: ev.Instance, TrustDomain: ev.Identity.TrustDomain,
				Namespace: ev.Identity.Namespace, Service: ev.Identity.Service, Event: b})
			size += n
		case inst := <-l.sess.Joined:
			if len(msg.Joined) < maxJoined {
				msg.Joined = append(msg.Joined, inst)
				size += len(inst) + 8
			}
		case <-tick.C:
			if len(msg.Events) == 0 && len(msg.Joined) == 0 && l.sess.Dropped()+dropped == reported && time.Since(last) < t.o.Idle {
				continue
			}
			if !send() {
				return
			}
		}
	}
}

// events takes what a leg sent for a tap of this replica.
func (t *Taps) events(m tapMessage) error {
	t.mu.Lock()
	sess := t.origins[m.ID]
	t.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("tap %d: %s", m.ID, tapGone)
	}
	if len(m.Joined) > maxJoined {
		return fmt.Errorf("a tap message naming %d sidecars, more than %d", len(m.Joined), maxJoined)
	}
	for _, inst := range m.Joined {
		sess.RelayedJoined(inst)
	}
	if m.Dropped > 0 {
		sess.RelayedDropped(m.Dropped)
	}
	for _, it := range m.Events {
		ev := &meshapi.TapEvent{}
		if err := proto.Unmarshal(it.Event, ev); err != nil {
			return fmt.Errorf("decoding a tap event of %s relayed by %s: %w", it.Instance, m.From, err)
		}
		sess.Relayed(meshserver.TapEvent{Instance: it.Instance, Event: ev,
			Identity: spiffe.Identity{TrustDomain: it.TrustDomain, Namespace: it.Namespace, Service: it.Service}})
	}
	return nil
}

// TapReport is GET /v1/tap/sessions: the tap sessions open on this
// replica.
func (t *Taps) TapReport() api.TapSessions {
	out := api.TapSessions{Open: t.o.Local.TapSessions(), ForPeers: []api.TapLeg{}}
	t.mu.Lock()
	out.Started = len(t.origins)
	if t.o.Peers == nil {
		out.Started = out.Open // every tap is this controller's own
	}
	for _, l := range t.legs {
		out.ForPeers = append(out.ForPeers, api.TapLeg{Origin: l.key.origin, ID: l.key.id, Service: l.service, End: l.sess.End.UTC()})
	}
	t.mu.Unlock()
	slices.SortFunc(out.ForPeers, func(a, b api.TapLeg) int { return strings.Compare(a.Origin, b.Origin) })
	return out
}
