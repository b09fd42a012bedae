package proxy

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
)

// breaker enforces an upstream's circuit-breaker caps in this sidecar. It
// survives config versions that leave the caps alone, so requests in
// flight keep counting.
type breaker struct {
	cfg     *meshapi.CircuitBreaker
	sem     chan struct{} // nil: no cap on requests
	pending atomic.Int64
	retries atomic.Int64
	conns   atomic.Int64
}

func newBreaker(cfg *meshapi.CircuitBreaker, prev *breaker) *breaker {
	if prev != nil && proto.Equal(prev.cfg, cfg) {
		return prev
	}
	b := &breaker{cfg: cfg}
	if n := cfg.GetMaxRequests(); n > 0 {
		b.sem = make(chan struct{}, n)
	}
	return b
}

// acquire takes a request slot, waiting as one of max_pending when all are
// taken. It returns the release function, or false when the request must
// be refused (or ctx ended while it waited).
func (b *breaker) acquire(ctx context.Context, waiting prometheus.Gauge) (func(), bool) {
	if b.sem == nil {
		return func() {}, true
	}
	release := func() { <-b.sem }
	select {
	case b.sem <- struct{}{}:
		return release, true
	default:
	}
	leave, ok := b.enqueue(waiting)
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

// enqueue takes one of max_pending places for a request that waits for a
// request slot or, on HTTP/1.1, for a connection under max_connections.
func (b *breaker) enqueue(waiting prometheus.Gauge) (leave func(), ok bool) {
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

// startRetry takes a retry slot; call the returned function when the try
// is over.
func (b *breaker) startRetry() (func(), bool) {
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

// startConn takes a TCP connection slot. (HTTP/1.1 upstreams count their
// pooled connections in h1pool, through breakerConns.)
func (b *breaker) startConn() (func(), bool) {
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

// breakerConns is an upstream's circuit breaker as its HTTP/1.1 pool sees
// it (h1pool.ConnLimit): max_connections caps the pooled connections, and
// a request waits for one as one of max_pending. It reads the breaker of
// the configuration in force at every call.
type breakerConns func() (*breaker, prometheus.Gauge)

// MaxConns is max_connections; 0 for no cap.
func (b breakerConns) MaxConns() int {
	br, _ := b()
	return int(br.cfg.GetMaxConnections())
}

// Queue lets a request wait for a pooled connection as one of max_pending.
func (b breakerConns) Queue() (func(), bool) {
	br, waiting := b()
	return br.enqueue(waiting)
}
