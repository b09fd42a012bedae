package compile

import (
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/spiffe"
)

// routes compiles a destination service's routes for one calling service.
func routes(p *policy.Policy, idx endpointSource, rs []policy.Route, caller string) []*meshapi.Route {
	var out []*meshapi.Route
	for _, r := range rs {
		mr := &meshapi.Route{
			Name:            r.Name,
			Timeouts:        timeouts(r.Timeouts),
			RequestHeaders:  headerOps(r.RequestHeaders),
			ResponseHeaders: headerOps(r.ResponseHeaders),
		}
		if f := r.Fault; f != nil && (len(f.Callers) == 0 || slices.Contains(f.Callers, caller)) {
			mr.Fault = &meshapi.Fault{
				Delay: duration(f.Delay), DelayPercent: uint32(f.DelayPercent),
				AbortStatus: uint32(f.AbortStatus), AbortPercent: uint32(f.AbortPercent),
			}
		}
		if m := r.Mirror; m != nil {
			ms := serviceOf(p, m.Service)
			mr.Mirror = &meshapi.Mirror{
				Service:   m.Service,
				SpiffeId:  spiffe.ID(p.Mesh.TrustDomain, nsOr(ms.Namespace), m.Service),
				Percent:   uint32(m.Percent),
				Endpoints: idx.endpoints(ms, nsOr(ms.Namespace)),
			}
		}
		for _, m := range r.Matches {
			mr.Matches = append(mr.Matches, routeMatch(m))
		}
		for _, s := range r.Splits {
			mr.Splits = append(mr.Splits, &meshapi.Split{Subset: s.Subset, Weight: uint32(s.Weight)})
		}
		if rt := r.Retry; rt != nil {
			mr.Retry = &meshapi.RetryPolicy{
				Attempts:           uint32(rt.Attempts),
				PerTryTimeout:      duration(rt.PerTryTimeout),
				RetryOn:            append([]string(nil), rt.RetryOn...),
				BudgetPercent:      uint32(rt.BudgetPercent),
				BudgetMinPerSecond: uint32(rt.BudgetMinPerSecond),
			}
		}
		out = append(out, mr)
	}
	return out
}

func routeMatch(m policy.Match) *meshapi.RouteMatch {
	rm := &meshapi.RouteMatch{Path: stringMatch(m.Path), Methods: append([]string(nil), m.Methods...)}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, &meshapi.KeyMatch{Name: h.Name, Match: stringMatch(h.Match), Invert: h.Invert})
	}
	for _, q := range m.Query {
		rm.Query = append(rm.Query, &meshapi.KeyMatch{Name: q.Name, Match: stringMatch(q.Match), Invert: q.Invert})
	}
	return rm
}

func stringMatch(m policy.StringMatch) *meshapi.StringMatch {
	if m.Kind == "" {
		return nil
	}
	k := map[policy.MatchKind]meshapi.MatchKind{
		policy.MatchExact:   meshapi.MatchKind_MATCH_EXACT,
		policy.MatchPrefix:  meshapi.MatchKind_MATCH_PREFIX,
		policy.MatchRegex:   meshapi.MatchKind_MATCH_REGEX,
		policy.MatchPresent: meshapi.MatchKind_MATCH_PRESENT,
	}[m.Kind]
	return &meshapi.StringMatch{Kind: k, Value: m.Value}
}

func timeouts(t policy.Timeouts) *meshapi.Timeouts {
	if t == (policy.Timeouts{}) {
		return nil
	}
	return &meshapi.Timeouts{Connect: duration(t.Connect), Request: duration(t.Request), Idle: duration(t.Idle), Stream: duration(t.Stream)}
}

func duration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func headerOps(h policy.HeaderOps) *meshapi.HeaderOps {
	if h.Empty() {
		return nil
	}
	rm := append([]string(nil), h.Remove...)
	sort.Strings(rm)
	return &meshapi.HeaderOps{Add: h.Add, Set: h.Set, Remove: rm}
}

func rateLimits(rls []policy.RateLimit) []*meshapi.RateLimit {
	var out []*meshapi.RateLimit
	for _, rl := range rls {
		mr := &meshapi.RateLimit{
			Name:              rl.Name,
			RequestsPerSecond: rl.RequestsPerSecond,
			Burst:             uint32(rl.Burst),
			PerCaller:         rl.PerCaller,
			Global:            rl.Global,
			PerJwtSubject:     rl.PerJWTSubject,
			Callers:           append([]string(nil), rl.Callers...),
		}
		mr.PerSourceIp = rl.PerSourceIP
		if !rl.Match.IsZero() {
			mr.Match = routeMatch(rl.Match)
		}
		out = append(out, mr)
	}
	return out
}
