package breaker

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
)

// Breaker enforces an upstream's circuit-breaker caps in this sidecar. It
// survives config versions that leave the caps alone, so requests in
// flight keep counting.
type Breaker struct {
	cfg     *meshapi.CircuitBreaker
	sem     chan struct{} // nil: no cap on requests
	pending atomic.Int64
	retries atomic.Int64
	conns   atomic.Int64
}

// New returns the breaker for cfg: prev itself when its caps are the same
// (so the counts carry on), else a fresh one.
func New(cfg *meshapi.CircuitBreaker, prev *Breaker) *Breaker {
	if prev != nil && proto.Equal(prev.cfg, cfg) {
		return prev
	}
	b := &Breaker{cfg: cfg}
	if n := cfg.GetMaxRequests(); n > 0 {
		b.sem = make(chan struct{}, n)
	}
	return b
}

// Acquire takes a request slot, waiting as one of max_pending when all are
// taken. It returns the release function, or false when the request must
// be refused (or ctx ended while it waited).
func (b *Breaker) Acquire(ctx context.Context, waiting prometheus.Gauge) (func(), bool) {
	if b.sem == nil {
		return func() {}, true
	}
	release := func() { <-b.sem }
	select {
	case b.sem <- struct{}{}:
		return release, true
	default:
	}
	leave, ok := b.Enqueue(waiting)
	if !ok {
		return nil, false
	}
	defer leave()
	select {
	case b.sem <- struct{}{}:
		return release, true
	case <-ctx.Done():
		return nil, false
	}
}

// Enqueue takes one of max_pending places for a request that waits for a
// request slot or, on HTTP/1.1, for a connection under max_connections.
func (b *Breaker) Enqueue(waiting prometheus.Gauge) (leave func(), ok bool) {
	if b.pending.Add(1) > int64(b.cfg.GetMaxPending()) {
		b.pending.Add(-1)
		return nil, false
	}
	waiting.Inc()
	return func() {
		waiting.Dec()
		b.pending.Add(-1)
	}, true
}

// StartRetry takes a retry slot; call the returned function when the try
// is over.
func (b *Breaker) StartRetry() (func(), bool) {
	max := int64(b.cfg.GetMaxRetries())
	if max == 0 {
		return func() {}, true
	}
	if b.retries.Add(1) > max {
		b.retries.Add(-1)
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { b.retries.Add(-1) }) }, true
}

// StartConn takes a TCP connection slot. (HTTP/1.1 upstreams count their
// pooled connections in h1pool, through Conns.)
func (b *Breaker) StartConn() (func(), bool) {
	max := int64(b.cfg.GetMaxConnections())
	if max == 0 {
		return func() {}, true
	}
	if b.conns.Add(1) > max {
		b.conns.Add(-1)
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { b.conns.Add(-1) }) }, true
}

// Conns is an upstream's circuit breaker as its HTTP/1.1 pool sees it
// (h1pool.ConnLimit): max_connections caps the pooled connections, and a
// request waits for one as one of max_pending. It returns the breaker of
// the configuration in force, and the gauge of requests waiting, at every
// call.
type Conns func() (*Breaker, prometheus.Gauge)

// MaxConns is max_connections; 0 for no cap.
func (b Conns) MaxConns() int {
	br, _ := b()
	return int(br.cfg.GetMaxConnections())
}

// Queue lets a request wait for a pooled connection as one of max_pending.
func (b Conns) Queue() (func(), bool) {
	br, waiting := b()
	return br.Enqueue(waiting)
}

// Config is the circuit breaker's configuration (nil: no caps).
func (b *Breaker) Config() *meshapi.CircuitBreaker { return b.cfg }
