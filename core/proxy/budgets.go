package proxy

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/budget"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/ratelimit"
)

// BudgetSender carries a sidecar's budget reports to the controller and
// returns its grants; core/proxy/control.Client is one.
type BudgetSender interface {
	Budgets(ctx context.Context, r *meshapi.BudgetReport) (*meshapi.BudgetGrants, error)
}

// Bounds on how often RunBudgets reports, whatever the controller asks.
const (
	minBudgetEvery = 100 * time.Millisecond
	maxBudgetEvery = 10 * time.Second
	// budgetStaleAfter report intervals without a grant, a sidecar
	// enforces a fair share instead of its last grant.
	budgetStaleAfter = 3
)

// budgets is the sidecar's side of its global rate limits: the inbound's
// global limiters in force, and what the controller last granted each
// limit (by name), so that a limiter compiled anew starts from it.
type budgets struct {
	wake   chan struct{} // a new global limiter: report now
	mu     sync.Mutex
	limits []*ratelimit.Limiter
	grants map[string]budgetGrant
}

type budgetGrant struct {
	fraction  float64 // of the limit's rate
	instances uint32
	at        time.Time
}

func newBudgets() *budgets {
	return &budgets{wake: make(chan struct{}, 1), grants: map[string]budgetGrant{}}
}

// set records the inbound's limiters in force. A global limiter not seen
// before starts at the part of the limit its name was last granted (the
// whole limit, when it never was), and the reporter is woken to ask for
// its share.
func (b *budgets) set(limits []*ratelimit.Limiter, now time.Time) {
	var global []*ratelimit.Limiter
	fresh := false
	b.mu.Lock()
	for _, l := range limits {
		if !l.Global() {
			continue
		}
		global = append(global, l)
		if slices.Contains(b.limits, l) {
			continue
		}
		fresh = true
		if g, ok := b.grants[l.Name()]; ok {
			n, burst := l.Limit()
			l.SetShare(now, g.fraction*n, shareBurst(burst, n, g.fraction))
		}
	}
	b.limits = global
	b.mu.Unlock()
	if fresh {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (b *budgets) current() []*ratelimit.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limits
}

// shareBurst is the part of burst a fraction of the rate gets: what the
// controller would grant (core/budget.BurstShare).
func shareBurst(burst uint32, n, fraction float64) uint32 {
	return budget.BurstShare(burst, n, fraction*n)
}

// budgetCount is what a report took of one limiter's counts.
type budgetCount struct {
	l                  *ratelimit.Limiter
	requests, admitted uint64
}

// RunBudgets reports the usage of the inbound's global rate limits to s
// and enforces the shares it grants, until ctx ends: at once when a
// global limit is configured, then as often as the controller asks
// (every second by default). A report that could not be sent is not
// lost: the next covers its time too. While no grant came for three
// report intervals (the controller is away), each global limit enforces a
// fair share: its rate divided by the instances of its last grant.
func (p *Proxy) RunBudgets(ctx context.Context, s BudgetSender) {
	every := time.Second
	sent := map[string]budgetCount{} // by limit name: the counts last reported
	from := time.Now()
	var warned time.Time
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.budgets.wake:
		}
		limits := p.budgets.current()
		a := p.applied.Load()
		if len(limits) == 0 || a == nil {
			t.Reset(every)
			continue
		}
		now := time.Now()
		r := &meshapi.BudgetReport{InstanceId: a.cfg.GetInstanceId(), WindowMs: uint32(min(now.Sub(from), 60*time.Second).Milliseconds())}
		counts := map[string]budgetCount{}
		for _, l := range limits {
			req, adm := l.Usage()
			c := budgetCount{l: l, requests: req, admitted: adm}
			counts[l.Name()] = c
			last := sent[l.Name()]
			if last.l != l { // a limiter compiled anew counts from 0
				last = budgetCount{}
			}
			r.Usage = append(r.Usage, &meshapi.BudgetUsage{Limit: l.Name(), Requests: req - last.requests, Admitted: adm - last.admitted})
		}
		sctx, cancel := context.WithTimeout(ctx, every)
		g, err := s.Budgets(sctx, r)
		cancel()
		switch {
		case err == nil:
			p.applyGrants(g, limits, now)
			sent, from = counts, now
			if ms := g.GetReportEveryMs(); ms > 0 {
				every = min(maxBudgetEvery, max(minBudgetEvery, time.Duration(ms)*time.Millisecond))
			}
		case now.Sub(from) >= 30*time.Second:
			// Too long a window to report: start a new one.
			sent, from = counts, now
		}
		if err != nil && ctx.Err() == nil && now.Sub(warned) > time.Minute {
			warned = now
			p.log.Warn("reporting global rate limit usage to the controller; enforcing the last share, or a fair share once it is older than three intervals", "err", err)
		}
		p.fallBack(limits, now, budgetStaleAfter*every)
		t.Reset(every)
	}
}

// applyGrants sets the share of each limit g grants.
func (p *Proxy) applyGrants(g *meshapi.BudgetGrants, limits []*ratelimit.Limiter, now time.Time) {
	b := p.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, gr := range g.GetGrants() {
		for _, l := range limits {
			if l.Name() != gr.GetLimit() {
				continue
			}
			n, _ := l.Limit()
			rate := min(n, max(0, gr.GetRequestsPerSecond()))
			if !(rate > 0) {
				continue // a share of nothing is not one: keep the last
			}
			l.SetShare(now, rate, gr.GetBurst())
			b.grants[l.Name()] = budgetGrant{fraction: rate / n, instances: max(1, gr.GetInstances()), at: now}
			p.metrics.globalShare.WithLabelValues(l.Name()).Set(rate)
		}
	}
}

// fallBack makes each limit whose last grant is older than stale enforce
// a fair share: its rate divided by the instances of that grant. A limit
// never granted keeps the whole limit.
func (p *Proxy) fallBack(limits []*ratelimit.Limiter, now time.Time, stale time.Duration) {
	b := p.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range limits {
		g, ok := b.grants[l.Name()]
		if !ok || now.Sub(g.at) <= stale {
			continue
		}
		n, burst := l.Limit()
		fair := 1 / float64(g.instances)
		if r, _ := l.Share(); r != fair*n {
			p.log.Warn("no share of a global rate limit from the controller for "+now.Sub(g.at).Round(10*time.Millisecond).String()+"; enforcing a fair share",
				"limit", l.Name(), "requests_per_second", fair*n, "instances", g.instances)
		}
		l.SetShare(now, fair*n, shareBurst(burst, n, fair))
		p.metrics.globalShare.WithLabelValues(l.Name()).Set(fair * n)
	}
}
