package proxy

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/core/meshapi"
)

// endpoint is one instance of an upstream: its sidecar's mesh address and
// the requests (HTTP) or connections (TCP) in flight to it.
type endpoint struct {
	id       string
	addr     string // host:port
	inflight atomic.Int64
	out      outlier
}

// acquire counts one request in flight; the returned function, called once
// or more, releases it.
func (e *endpoint) acquire() func() {
	e.inflight.Add(1)
	var once sync.Once
	return func() { once.Do(func() { e.inflight.Add(-1) }) }
}

// balancer picks an endpoint for a request or connection.
type balancer interface {
	// pick returns an endpoint not in skip (which may be nil), or nil when
	// none is left.
	pick(skip map[*endpoint]bool) *endpoint
}

// newBalancer returns the balancer lb names over eps. intn(n) returns a
// number in [0, n); nil means math/rand/v2.
func newBalancer(lb meshapi.LB, eps []*endpoint, intn func(int) int) balancer {
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
	eps  []*endpoint
	next atomic.Uint64
}

func (r *roundRobin) pick(skip map[*endpoint]bool) *endpoint {
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
// choices", which avoids herding onto one idle endpoint.
type leastRequest struct {
	eps  []*endpoint
	intn func(int) int
}

func (l *leastRequest) pick(skip map[*endpoint]bool) *endpoint {
	cand := l.eps
	if len(skip) > 0 {
		cand = make([]*endpoint, 0, len(l.eps))
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

// buildEndpoints turns configured endpoints into balancer endpoints,
// reusing the ones in prev with the same address so their in-flight counts
// survive a config change.
func buildEndpoints(cfg []*meshapi.Endpoint, prev []*endpoint) []*endpoint {
	old := make(map[string]*endpoint, len(prev))
	for _, e := range prev {
		old[e.addr] = e
	}
	out := make([]*endpoint, 0, len(cfg))
	for _, c := range cfg {
		addr := net.JoinHostPort(c.GetAddress(), strconv.Itoa(int(c.GetPort())))
		if e, ok := old[addr]; ok && e.id == c.GetInstanceId() {
			out = append(out, e)
			continue
		}
		out = append(out, &endpoint{id: c.GetInstanceId(), addr: addr})
	}
	return out
}
