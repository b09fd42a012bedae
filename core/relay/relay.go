package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/budget"
	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/telemetry"
)

// maxDepth bounds a message's JSON nesting (a message is 3 deep), checked
// before it is decoded.
const maxDepth = 8

// Kind is the kind of the messages between replicas (state.HandlePeer).
const Kind = "relay/v1"

// MaxQueued bounds the reports (golden-signal and demand) queued between
// two sends.
const MaxQueued = 20000

// Sender sends a message to every other replica (core/state's
// Node.SendPeers).
type Sender interface {
	SendPeers(kind string, body []byte) error
}

// Options configure a Relay.
type Options struct {
	Collector *telemetry.Collector
	Pool      *budget.Pool
	Send      Sender
	// MaxMessage bounds one message's body (state.MaxPeerMessage).
	MaxMessage int
	// Every is how often the queue goes out. 0: 1s.
	Every  time.Duration
	Logger *slog.Logger
}

// Relay passes reports on to the other replicas; see the package doc.
type Relay struct {
	o Options

	mu      sync.Mutex
	stats   []statsItem
	demand  []demandItem
	dropped atomic.Uint64
	failed  time.Time // when a send last failed and was logged
}

// statsItem is one golden-signal report as it goes to the peers.
type statsItem struct {
	Instance  string `json:"instance"`
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	// ReceivedMs is when the first replica received it, Unix ms.
	ReceivedMs int64 `json:"received_ms"`
	// Report is the meshapi.StatsReport, protobuf.
	Report []byte `json:"report"`
}

// demandItem is one report the Pool granted, as it goes to the peers.
type demandItem struct {
	Namespace string  `json:"namespace"`
	Service   string  `json:"service"`
	Limit     string  `json:"limit"`
	Instance  string  `json:"instance"`
	N         float64 `json:"n"`
	Requests  uint64  `json:"requests"`
	WindowMs  int64   `json:"window_ms"`
}

// message is one message's body.
type message struct {
	Stats  []statsItem  `json:"stats,omitempty"`
	Demand []demandItem `json:"demand,omitempty"`
}

// New returns a Relay.
func New(o Options) *Relay {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 512 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Relay{o: o}
}

// Record records a sidecar's report in this replica's Collector and
// queues it for the others (core/meshserver's Stats).
func (r *Relay) Record(instance, service, namespace string, received time.Time, rep *meshapi.StatsReport) {
	r.o.Collector.Record(instance, service, namespace, received, rep)
	b, err := proto.Marshal(rep)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.stats)+len(r.demand) >= MaxQueued {
		r.dropped.Add(1)
		return
	}
	r.stats = append(r.stats, statsItem{Instance: instance, Service: service, Namespace: namespace, ReceivedMs: received.UnixMilli(), Report: b})
}

// Refused counts a refused report here only.
func (r *Relay) Refused(reason string) { r.o.Collector.Refused(reason) }

// Granted queues a demand report this replica's Pool granted
// (budget.Options.Granted).
func (r *Relay) Granted(k budget.Key, instance string, n float64, requests uint64, window time.Duration, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.stats)+len(r.demand) >= MaxQueued {
		r.dropped.Add(1)
		return
	}
	r.demand = append(r.demand, demandItem{Namespace: k.Namespace, Service: k.Service, Limit: k.Limit, Instance: instance,
		N: n, Requests: requests, WindowMs: window.Milliseconds()})
}

// Dropped is how many reports the queue had no room for.
func (r *Relay) Dropped() uint64 { return r.dropped.Load() }

// Run sends the queue every Options.Every until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.Flush()
	}
}

// Flush sends what is queued now, in messages of at most MaxMessage
// bytes. A report too large for a message alone is dropped.
func (r *Relay) Flush() {
	r.mu.Lock()
	stats, demand := r.stats, r.demand
	r.stats, r.demand = nil, nil
	r.mu.Unlock()
	var (
		msg  message
		size int
	)
	send := func() {
		if len(msg.Stats)+len(msg.Demand) == 0 {
			return
		}
		b, err := json.Marshal(msg)
		msg, size = message{}, 0
		if err == nil {
			err = r.o.Send.SendPeers(Kind, b)
		}
		if err != nil && time.Since(r.failed) > time.Minute {
			r.failed = time.Now()
			r.o.Logger.Warn("relay: a peer replica missed the sidecars' reports (GET /v1/stats and the global limits' shares differ there until it catches up); logged once a minute", "err", err)
		}
	}
	// The JSON of an item: its fields and, for a report, base64 of its
	// bytes (4 for 3).
	const overhead = 256
	for _, it := range stats {
		n := len(it.Report)*4/3 + overhead
		if n > r.o.MaxMessage {
			r.dropped.Add(1)
			continue
		}
		if size+n > r.o.MaxMessage {
			send()
		}
		msg.Stats = append(msg.Stats, it)
		size += n
	}
	for _, it := range demand {
		if size+overhead > r.o.MaxMessage {
			send()
		}
		msg.Demand = append(msg.Demand, it)
		size += overhead
	}
	send()
}

// Receive takes a message another replica's Relay sent (the handler of
// Kind): its reports go into the Collector, its demand to the Pool.
func (r *Relay) Receive(body []byte) error {
	var m message
	if err := inputlimit.JSONDepth(body, maxDepth); err != nil {
		return fmt.Errorf("decoding a relay message: %w", err)
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("decoding a relay message: %w", err)
	}
	if len(m.Stats)+len(m.Demand) > MaxQueued {
		return fmt.Errorf("a relay message of %d reports, more than %d", len(m.Stats)+len(m.Demand), MaxQueued)
	}
	for _, it := range m.Stats {
		var rep meshapi.StatsReport
		if err := proto.Unmarshal(it.Report, &rep); err != nil {
			return fmt.Errorf("decoding a relayed report of %s: %w", it.Instance, err)
		}
		r.o.Collector.Relayed(it.Instance, it.Service, it.Namespace, time.UnixMilli(it.ReceivedMs), &rep)
	}
	now := time.Now()
	for _, it := range m.Demand {
		r.o.Pool.Observe(budget.Key{Namespace: it.Namespace, Service: it.Service, Limit: it.Limit}, it.Instance,
			it.N, it.Requests, time.Duration(it.WindowMs)*time.Millisecond, now)
	}
	return nil
}
