package proxy

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/balance"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/mirror"
	"github.com/weftmesh/weft/core/proxy/retry"
)

// route is a compiled meshapi.Route of one upstream.
type route struct {
	name     string
	matchers []*canon.Matcher // any; none: every request
	splits   []*pool          // with cumulative weights
	total    int
	retry    *retry.Policy
	request  time.Duration // 0: none
	stream   time.Duration // 0: none
	reqHdrs  *meshapi.HeaderOps
	respHdrs *meshapi.HeaderOps
	fault    *meshapi.Fault
	mirror   *mirror.Target
	cell     *statCell // its requests' golden signals (stats.go)
}

// pool is the endpoints of one split (or of the whole upstream) and their
// balancer.
type pool struct {
	subset string // "" for the whole upstream
	upTo   int    // cumulative weight
	eps    []*endpoint
	lb     balancer
	cell   *statCell // its requests' golden signals (stats.go)
}

// compileRoutes compiles an upstream's routes over its endpoints. eps and
// cfg's endpoints are in the same order. prev, when not nil, is the
// upstream's previous routes, whose retry budgets carry over by name.
func compileRoutes(up *meshapi.Upstream, eps []*endpoint, lbNew func([]*endpoint) balancer, prev []*route) ([]*route, error) {
	var out []*route
	budgets := map[string]*retry.Budget{}
	for _, r := range prev {
		if r.retry != nil {
			budgets[r.name] = r.retry.Budget()
		}
	}
	for i, mr := range up.GetRoutes() {
		r := &route{name: mr.GetName(), reqHdrs: mr.GetRequestHeaders(), respHdrs: mr.GetResponseHeaders(), fault: mr.GetFault(), mirror: mirror.Compile(mr.GetMirror())}
		if f := r.fault; f != nil && (f.GetDelayPercent() > 100 || f.GetAbortPercent() > 100 ||
			(f.GetAbortPercent() > 0 && (f.GetAbortStatus() < 400 || f.GetAbortStatus() > 599))) {
			return nil, fmt.Errorf("route %q: fault: percentages go to 100 and abort_status is 400 to 599", r.name)
		}
		if r.name == "" {
			r.name = fmt.Sprintf("route-%d", i)
		}
		for j, m := range mr.GetMatches() {
			cm, err := canon.Compile(m)
			if err != nil {
				return nil, fmt.Errorf("route %q match %d: %w", r.name, j, err)
			}
			r.matchers = append(r.matchers, cm)
		}
		for _, s := range mr.GetSplits() {
			if s.GetWeight() == 0 {
				continue
			}
			var sub []*endpoint
			for k, ep := range up.GetEndpoints() {
				if s.GetSubset() == "" || slices.Contains(ep.GetSubsets(), s.GetSubset()) {
					sub = append(sub, eps[k])
				}
			}
			r.total += int(s.GetWeight())
			r.splits = append(r.splits, &pool{subset: s.GetSubset(), upTo: r.total, eps: sub, lb: lbNew(sub)})
		}
		if len(mr.GetSplits()) > 0 && r.total == 0 {
			return nil, fmt.Errorf("route %q: every split has weight 0", r.name)
		}
		r.dropEmptySplits()
		if rp := mr.GetRetry(); rp != nil {
			if rp.GetAttempts() == 0 {
				return nil, fmt.Errorf("route %q: retry with 0 attempts", r.name)
			}
			pol, err := retry.New(rp, budgets[r.name])
			if err != nil {
				return nil, fmt.Errorf("route %q: %w", r.name, err)
			}
			r.retry = pol
		}
		r.request = mergeTimeout(mr.GetTimeouts().GetRequest().AsDuration(), up.GetTimeouts().GetRequest().AsDuration())
		r.stream = mergeTimeout(mr.GetTimeouts().GetStream().AsDuration(), up.GetTimeouts().GetStream().AsDuration())
		out = append(out, r)
	}
	return out, nil
}

// dropEmptySplits leaves out the splits whose subset has no instances, as
// long as some split has instances, so that their weight goes to the others
// in proportion: a canary subset that empties when a deployment is promoted
// (or a blue/green side that is scaled to zero) stops taking traffic instead
// of failing its share. With every subset empty the splits stay, and
// requests fail with "no healthy instances".
func (r *route) dropEmptySplits() {
	var kept []*pool
	var weights []int
	prev := 0
	for _, p := range r.splits {
		w := p.upTo - prev
		prev = p.upTo
		if len(p.eps) > 0 {
			kept, weights = append(kept, p), append(weights, w)
		}
	}
	if len(kept) == 0 || len(kept) == len(r.splits) {
		return
	}
	r.total = 0
	for i, p := range kept {
		r.total += weights[i]
		p.upTo = r.total
	}
	r.splits = kept
}

func mergeTimeout(route, upstream time.Duration) time.Duration {
	if route > 0 {
		return route
	}
	return max(upstream, 0)
}

// matches reports whether r takes req.
func (r *route) matches(req *http.Request) bool {
	if len(r.matchers) == 0 {
		return true
	}
	for _, m := range r.matchers {
		if m.Match(req, nil) {
			return true
		}
	}
	return false
}

// pick returns the pool a request goes to, by weight.
func (r *route) pick(intn func(int) int) *pool {
	if len(r.splits) == 1 {
		return r.splits[0]
	}
	n := intn(r.total)
	for _, p := range r.splits {
		if n < p.upTo {
			return p
		}
	}
	return r.splits[len(r.splits)-1]
}

// endpoint and balancer are package balance's, named short here.
type (
	endpoint = balance.Endpoint
	balancer = balance.Balancer
)
