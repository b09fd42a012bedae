package ratelimit

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/canon"
)

// tokenBucket holds up to burst tokens and gains rate tokens a second.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// take takes a token, or says how long until one is there.
func (b *tokenBucket) take(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = b.burst
	} else if now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// Limiter is a compiled meshapi.RateLimit with its buckets.
type Limiter struct {
	cfg     *meshapi.RateLimit
	match   *canon.Matcher  // nil: every request
	callers map[string]bool // empty: every caller
	mu      sync.Mutex
	buckets map[string]*tokenBucket // by caller service, or "" for all
}

func compileRateLimit(rl *meshapi.RateLimit) (*Limiter, error) {
	if rl.GetRequestsPerSecond() <= 0 || rl.GetBurst() == 0 {
		return nil, fmt.Errorf("rate limit %q: requests_per_second and burst must be positive", rl.GetName())
	}
	l := &Limiter{cfg: rl, callers: map[string]bool{}, buckets: map[string]*tokenBucket{}}
	if rl.GetMatch() != nil {
		m, err := canon.Compile(rl.GetMatch())
		if err != nil {
			return nil, fmt.Errorf("rate limit %q: %w", rl.GetName(), err)
		}
		l.match = m
	}
	for _, c := range rl.GetCallers() {
		l.callers[c] = true
	}
	return l, nil
}

// Compile compiles the inbound's limits, keeping the buckets of
// a limit whose configuration did not change.
func Compile(rls []*meshapi.RateLimit, prev []*Limiter) ([]*Limiter, error) {
	old := map[string]*Limiter{}
	for _, l := range prev {
		old[l.cfg.GetName()] = l
	}
	var out []*Limiter
	for _, rl := range rls {
		if l, ok := old[rl.GetName()]; ok && proto.Equal(l.cfg, rl) {
			out = append(out, l)
			continue
		}
		l, err := compileRateLimit(rl)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Allow takes a token for a request from caller, if the limit applies.
func (l *Limiter) Allow(caller string, r *http.Request, now time.Time) (bool, time.Duration) {
	if len(l.callers) > 0 && !l.callers[caller] {
		return true, 0
	}
	if l.match != nil && !l.match.Match(r, nil) {
		return true, 0
	}
	key := ""
	if l.cfg.GetPerCaller() {
		key = caller
	}
	if l.cfg.GetPerSourceIp() {
		key += "@" + sourceIP(r.RemoteAddr)
	}
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= MaxBuckets {
			l.evict(now)
		}
		b = &tokenBucket{rate: l.cfg.GetRequestsPerSecond(), burst: float64(l.cfg.GetBurst())}
		l.buckets[key] = b
	}
	l.mu.Unlock()
	return b.take(now)
}

// RetryAfter renders a wait as whole seconds for Retry-After, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// Name is the limit's name in the policy.
func (l *Limiter) Name() string { return l.cfg.GetName() }

// Matcher is the match of the requests the limit counts; nil: every
// request.
func (l *Limiter) Matcher() *canon.Matcher { return l.match }

// MaxBuckets bounds the buckets of one limit (per caller, per source IP):
// a flood from many addresses costs a fixed amount of memory.
const MaxBuckets = 10000

// evict makes room for buckets: it drops the buckets that have refilled
// (forgetting them changes nothing) and, when that frees less than an
// eighth of the table, buckets at random (map order) up to an eighth, so
// that a flood from new addresses pays a scan once per eighth of the
// table, not per request. Call with l.mu held.
func (l *Limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		b.mu.Lock()
		full := b.last.IsZero() || b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
		b.mu.Unlock()
		if full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) <= MaxBuckets-MaxBuckets/8 {
			break
		}
		delete(l.buckets, k)
	}
}

// sourceIP is the address of a request's client, without the port.
func sourceIP(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// PerSourceIP says whether the limit keeps a bucket per client address.
func (l *Limiter) PerSourceIP() bool { return l.cfg.GetPerSourceIp() }
