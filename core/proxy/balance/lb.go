package balance

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/core/meshapi"
)

// Endpoint is one instance of an upstream: its sidecar's mesh address and
// the requests (HTTP) or connections (TCP) in flight to it.
type Endpoint struct {
	ID       string // the instance
	Addr     string // host:port
	inflight atomic.Int64
	out      outlier
}

// Inflight is the number of requests (or connections) in flight to e.
func (e *Endpoint) Inflight() int64 { return e.inflight.Load() }

// Acquire counts one request in flight; the returned function, called once
// or more, releases it.
func (e *Endpoint) Acquire() func() {
	e.inflight.Add(1)
	var once sync.Once
	return func() { once.Do(func() { e.inflight.Add(-1) }) }
}

// Enter counts one request in flight, and Leave, called once for each
// Enter, ends it: Acquire without the function's allocation, for a caller
// that keeps track itself.
func (e *Endpoint) Enter() { e.inflight.Add(1) }

// Leave ends a request Enter counted.
func (e *Endpoint) Leave() { e.inflight.Add(-1) }

// Balancer picks an Endpoint for a request or connection.
type Balancer interface {
	// Pick returns an Endpoint not in skip (which may be nil), or nil when
	// none is left.
	Pick(skip map[*Endpoint]bool) *Endpoint
}

// New returns the Balancer lb names over eps. intn(n) returns a
// number in [0, n); nil means math/rand/v2.
func New(lb meshapi.LB, eps []*Endpoint, intn func(int) int) Balancer {
	if intn == nil {
		intn = rand.IntN
	}
	switch lb {
	case meshapi.LB_LB_LEAST_REQUEST:
		return &leastRequest{eps: eps, intn: intn}
	case meshapi.LB_LB_RANDOM:
		return &random{eps: eps, intn: intn}
	case meshapi.LB_LB_RING_HASH:
		return newRingHash(eps, intn)
	case meshapi.LB_LB_MAGLEV:
		return newMaglev(eps, intn)
	default:
		return &roundRobin{eps: eps}
	}
}

// roundRobin takes the endpoints in turn.
type roundRobin struct {
	eps  []*Endpoint
	next atomic.Uint64
}

func (r *roundRobin) Pick(skip map[*Endpoint]bool) *Endpoint {
	n := uint64(len(r.eps))
	for range n {
		e := r.eps[(r.next.Add(1)-1)%n]
		if !skip[e] {
			return e
		}
	}
	return nil
}

// leastRequest draws two different endpoints at random and takes the one
// with fewer requests in flight (the first on a tie): the "power of two
// choices", which avoids herding onto one idle Endpoint.
type leastRequest struct {
	eps  []*Endpoint
	intn func(int) int
}

func (l *leastRequest) Pick(skip map[*Endpoint]bool) *Endpoint {
	cand := l.eps
	if len(skip) > 0 {
		cand = make([]*Endpoint, 0, len(l.eps))
		for _, e := range l.eps {
			if !skip[e] {
				cand = append(cand, e)
			}
		}
	}
	switch len(cand) {
	case 0:
		return nil
	case 1:
		return cand[0]
	}
	i := l.intn(len(cand))
	j := l.intn(len(cand) - 1)
	if j >= i {
		j++
	}
	a, b := cand[i], cand[j]
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// Build turns configured endpoints into Balancer endpoints,
// reusing the ones in prev with the same address so their in-flight counts
// survive a config change.
func Build(cfg []*meshapi.Endpoint, prev []*Endpoint) []*Endpoint {
	old := make(map[string]*Endpoint, len(prev))
	for _, e := range prev {
		old[e.Addr] = e
	}
	out := make([]*Endpoint, 0, len(cfg))
	for _, c := range cfg {
		addr := net.JoinHostPort(c.GetAddress(), strconv.Itoa(int(c.GetPort())))
		if e, ok := old[addr]; ok && e.ID == c.GetInstanceId() {
			out = append(out, e)
			continue
		}
		out = append(out, &Endpoint{ID: c.GetInstanceId(), Addr: addr})
	}
	return out
}
