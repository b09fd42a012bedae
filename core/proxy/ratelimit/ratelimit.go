package ratelimit

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
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

// set changes the bucket's rate and size, from now on: what it gained
// until now, at the old rate, stays (up to the new size).
func (b *tokenBucket) set(now time.Time, rate, burst float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	b.rate, b.burst = rate, burst
	b.tokens = math.Min(b.tokens, burst)
}

func (b *tokenBucket) get() (rate, burst float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate, b.burst
}

// Limiter is a compiled meshapi.RateLimit with its buckets.
type Limiter struct {
	cfg     *meshapi.RateLimit
	match   *canon.Matcher  // nil: every request
	callers map[string]bool // empty: every caller
	mu      sync.Mutex
	buckets map[string]*tokenBucket // by caller service, or "" for all
	// A global limit's one bucket enforces the share the controller
	// granted (SetShare); requests and admitted count what it took, for
	// the sidecar's budget reports.
	requests, admitted atomic.Uint64
}

func compileRateLimit(rl *meshapi.RateLimit) (*Limiter, error) {
	if rl.GetRequestsPerSecond() <= 0 || rl.GetBurst() == 0 {
		return nil, fmt.Errorf("rate limit %q: requests_per_second and burst must be positive", rl.GetName())
	}
	if rl.GetGlobal() && rl.GetPerCaller() {
		return nil, fmt.Errorf("rate limit %q: a global limit cannot be per caller", rl.GetName())
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

// MaxSubjectBuckets bounds the buckets of a per_jwt_subject limit: past
// it, buckets that have filled up again (as good as new) are dropped, and
// if none has, new end users share one overflow bucket.
const MaxSubjectBuckets = 10000

// Allow takes a token for a request from caller, if the limit applies.
func (l *Limiter) Allow(caller string, r *http.Request, now time.Time) (bool, time.Duration) {
	return l.AllowSubject(caller, "", r, now)
}

// JWTProvider is the provider whose token's subject keys the limit's
// buckets (per_jwt_subject), or "".
func (l *Limiter) JWTProvider() string { return l.cfg.GetPerJwtSubject() }

// AllowSubject is Allow for a request whose end user is subject (the sub
// claim of its valid token of JWTProvider; "" when none).
func (l *Limiter) AllowSubject(caller, subject string, r *http.Request, now time.Time) (bool, time.Duration) {
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
	perSubject := l.cfg.GetPerJwtSubject() != ""
	if perSubject {
		key += "\x00" + subject
	}
	b := l.bucket(key, perSubject, now)
	ok, wait := b.take(now)
	if l.cfg.GetGlobal() {
		l.requests.Add(1)
		if ok {
			l.admitted.Add(1)
		}
	}
	return ok, wait
}

// bucket is key's bucket, made on first use. Per-subject buckets are
// capped (MaxSubjectBuckets): full ones are dropped first, then new
// subjects share one overflow bucket.
func (l *Limiter) bucket(key string, perSubject bool, now time.Time) *tokenBucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil && perSubject && len(l.buckets) >= MaxSubjectBuckets {
		l.evictFull(now)
		if len(l.buckets) >= MaxSubjectBuckets {
			key = "\x01overflow"
			b = l.buckets[key]
		}
	}
	if b == nil {
		if len(l.buckets) >= MaxBuckets {
			l.evict(now)
		}
		b = &tokenBucket{rate: l.cfg.GetRequestsPerSecond(), burst: float64(l.cfg.GetBurst())}
		l.buckets[key] = b
	}
	return b
}

// Global says whether the limit holds across every instance of the
// service: its bucket enforces the share SetShare gives it (the whole
// limit until then).
func (l *Limiter) Global() bool { return l.cfg.GetGlobal() }

// Limit is the limit as configured: its rate and burst (for a global
// limit, across every instance).
func (l *Limiter) Limit() (rate float64, burst uint32) {
	return l.cfg.GetRequestsPerSecond(), l.cfg.GetBurst()
}

// SetShare makes a global limit's bucket admit rate requests a second,
// burst at once, from now on.
func (l *Limiter) SetShare(now time.Time, rate float64, burst uint32) {
	l.bucket("", false, now).set(now, rate, float64(max(1, burst)))
}

// Share is the rate and burst a global limit's bucket enforces.
func (l *Limiter) Share() (rate float64, burst uint32) {
	r, b := l.bucket("", false, time.Time{}).get()
	return r, uint32(b)
}

// Usage is what a global limit took since it was compiled: requests it
// matched, and of those the ones it admitted.
func (l *Limiter) Usage() (requests, admitted uint64) {
	// Admitted before requests: no reading has more admitted than
	// requests.
	admitted = l.admitted.Load()
	return l.requests.Load(), admitted
}

// evictFull drops the buckets that have filled up again by now.
func (l *Limiter) evictFull(now time.Time) {
	for k, b := range l.buckets {
		b.mu.Lock()
		full := b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
		b.mu.Unlock()
		if full {
			delete(l.buckets, k)
		}
	}
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

// sourceIP is the bucket key of a request's client: its address without
// the port, in one spelling (an IPv4-mapped IPv6 address as IPv4, no
// zone), and for IPv6 its /64: one subscriber is commonly given a whole
// /64, and a limit per address would let it take a new address, and a
// new bucket, for every request.
func sourceIP(remote string) string {
	h := remote
	if host, _, err := net.SplitHostPort(remote); err == nil {
		h = host
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return h
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// PerSourceIP says whether the limit keeps a bucket per client address.
func (l *Limiter) PerSourceIP() bool { return l.cfg.GetPerSourceIp() }
