package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/backoff"
)

// Defaults of ReplicaOptions.
const (
	// DefaultFailoverSpread bounds the random wait before a sidecar tries
	// the next replica after its replica failed: 1,000 sidecars of a dead
	// replica arrive at the others over a second, not in one instant.
	DefaultFailoverSpread = time.Second
	// resolveTimeout bounds one round of DNS lookups.
	resolveTimeout = 5 * time.Second
	// maxControllers bounds the addresses a sidecar is given, and those
	// one DNS name may add.
	maxControllers = 64
)

// ParseControllers turns --controller values (each one address or a
// comma-separated list of them) into a list of host:port addresses, in
// order, without repeats. An empty list is an error.
func ParseControllers(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			host, port, err := net.SplitHostPort(a)
			if err != nil || host == "" || port == "" {
				return nil, fmt.Errorf("controller address %q: want host:port (a DNS name or an IP, and the port of the controller's sidecar API, e.g. weft-controller.internal:7400)", a)
			}
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no controller address; pass --controller host:port (repeat it, or give a comma-separated list, for every replica)")
	}
	if len(out) > maxControllers {
		return nil, fmt.Errorf("%d controller addresses, more than %d; give a DNS name that resolves to the replicas instead", len(out), maxControllers)
	}
	return out, nil
}

// Target is one controller replica as a sidecar dials it.
type Target struct {
	// Addr is what is dialled: ip:port once a DNS name is resolved, else
	// the address as given.
	Addr string
	// Name is the host the controller's certificate must be valid for:
	// the DNS name or IP as given, whatever it resolved to.
	Name string
}

// ReplicaOptions shape a Replicas.
type ReplicaOptions struct {
	// MinBackoff and MaxBackoff bound the wait between rounds, once every
	// replica failed since the last success (core/backoff, doubling, with
	// jitter). Defaults: 200ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Spread bounds the random wait (backoff.Spread: uniform from 0)
	// before the next replica is tried, within a round. Default:
	// DefaultFailoverSpread.
	Spread time.Duration
	// Resolve looks a DNS name up. Default: net.DefaultResolver.LookupHost.
	Resolve func(ctx context.Context, host string) ([]string, error)
	// Logger receives lookups that failed. Default: slog.Default().
	Logger *slog.Logger
}

// Replicas is the sidecar's choice of controller replica: which one to
// talk to now, and how long to wait before the next attempt when it
// failed. It is safe for concurrent use (the config stream, renewals and
// reports share it).
//
// The replicas are the given addresses, each DNS name among them
// replaced by every address it resolves to (again at the start of every
// round), in an order of the sidecar's own drawn at random, so that the
// sidecars of a mesh spread over the replicas and those of a dead replica
// spread over the rest. When the replica in use fails, the next is tried
// after a wait drawn from [0, Spread): quickly, but not all sidecars in
// the same instant. Only when every replica failed since the last success
// does the sidecar back off (MinBackoff doubling to MaxBackoff) before
// the next round.
type Replicas struct {
	given []string
	o     ReplicaOptions

	mu      sync.Mutex
	targets []Target
	i       int  // index of the current target
	fails   int  // failures since the last success
	stale   bool // resolve before the next pick
	bo      *backoff.Backoff
}

// NewReplicas returns the replicas of addrs (host:port each; see
// ParseControllers). Nothing is resolved before the first Current.
func NewReplicas(addrs []string, o ReplicaOptions) (*Replicas, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no controller address; pass --controller host:port")
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("controller address %q: %w; want host:port", a, err)
		}
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if o.Spread <= 0 {
		o.Spread = DefaultFailoverSpread
	}
	if o.Resolve == nil {
		o.Resolve = net.DefaultResolver.LookupHost
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Replicas{given: slices.Clone(addrs), o: o, stale: true, bo: backoff.New(o.MinBackoff, o.MaxBackoff)}, nil
}

// Current returns the replica to talk to now, resolving the DNS names
// first when a round starts.
func (r *Replicas) Current(ctx context.Context) Target {
	r.mu.Lock()
	stale := r.stale
	r.mu.Unlock()
	if stale {
		// Lookups run unlocked: a slow resolver holds back nobody
		// else's pick.
		ts := r.resolve(ctx)
		r.mu.Lock()
		if r.stale {
			r.targets, r.i, r.stale = ts, 0, false
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.targets[r.i%len(r.targets)]
}

// Peek returns the replica Current would return, without looking up
// anything: the zero Target before the first Current.
func (r *Replicas) Peek() Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.targets) == 0 {
		return Target{}
	}
	return r.targets[r.i%len(r.targets)]
}

// Targets returns the replicas of the current round, in the order they
// are tried.
func (r *Replicas) Targets() []Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.targets)
}

// Failed says t failed (it did not answer, or its stream ended) and
// returns how long to wait before talking to Current again. If t is no
// longer the current replica (another caller moved on already), the wait
// is short. The first failure after a success, and every failure within
// a round, wait a random part of Spread; a failure that ends a round
// (every replica failed) waits the next backoff delay, and the DNS names
// are looked up again.
func (r *Replicas) Failed(t Target) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.targets)
	if n == 0 || r.targets[r.i%n] != t {
		return backoff.Spread(r.o.Spread)
	}
	r.fails++
	r.i = (r.i + 1) % n
	if r.fails == 1 || r.fails%n != 0 {
		return backoff.Spread(r.o.Spread)
	}
	r.stale = true
	return r.bo.Next()
}

// Succeeded says t answered: the next failure starts a new round.
func (r *Replicas) Succeeded(t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.targets); n > 0 && r.targets[r.i%n] == t {
		r.fails = 0
		r.bo.Reset()
	}
}

// resolve turns the given addresses into targets in a random order: a
// DNS name into one target per address it resolves to (at most
// maxControllers), an IP as it is. A name that does not resolve
// stays as given (the dial resolves it, or fails and the round moves on).
func (r *Replicas) resolve(ctx context.Context) []Target {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	var out []Target
	add := func(t Target) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, a := range r.given {
		host, port, _ := net.SplitHostPort(a)
		if net.ParseIP(host) != nil {
			add(Target{Addr: a, Name: host})
			continue
		}
		ips, err := r.o.Resolve(ctx, host)
		if err != nil || len(ips) == 0 {
			if err == nil {
				err = errors.New("no address")
			}
			r.o.Logger.Warn("looking up controller "+host+"; dialling it by name", "err", err)
			add(Target{Addr: a, Name: host})
			continue
		}
		for _, ip := range ips[:min(len(ips), maxControllers)] {
			add(Target{Addr: net.JoinHostPort(ip, port), Name: host})
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
