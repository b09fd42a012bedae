package compile

import (
	"fmt"
	"sort"
	"strings"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// UndeclaredUpstreams lists the upstream ports ("upstream:<service>", a
// Nomad job's weft upstream, a Mesos weft.upstream label) of instance in
// whose service the policy does not declare as an upstream of in's
// service, sorted. Compilation ignores those ports: the app's calls to
// them reach nothing until the policy declares the upstream.
func UndeclaredUpstreams(p *policy.Policy, service string, ports map[string]int) []string {
	var out []string
	for name := range ports {
		up, ok := strings.CutPrefix(name, UpstreamPortPrefix)
		if !ok {
			continue
		}
		// Looked up only for an upstream port: most instances have
		// none, and this runs for every instance on every change.
		declared := false
		for _, u := range p.Services[service].Upstreams {
			if u.Service == up {
				declared = true
				break
			}
		}
		if !declared {
			out = append(out, up)
		}
	}
	sort.Strings(out)
	return out
}

// UndeclaredDrops is UndeclaredUpstreams for every entry, as the
// controller's status lists them (reason model.ReasonUndeclaredUpstream).
func UndeclaredDrops(p *policy.Policy, entries []registry.Entry) []model.Dropped {
	var out []model.Dropped
	for _, e := range entries {
		if ups := UndeclaredUpstreams(p, e.Instance.Service, e.Instance.Ports); len(ups) > 0 {
			out = append(out, undeclaredDrops(e, ups)...)
		}
	}
	return out
}

// undeclaredDrops are e's undeclared upstreams ups as UndeclaredDrops
// lists them.
func undeclaredDrops(e registry.Entry, ups []string) []model.Dropped {
	out := make([]model.Dropped, 0, len(ups))
	for _, up := range ups {
		out = append(out, model.Dropped{
			Adapter: e.Adapter, Instance: e.Instance.ID, Reason: model.ReasonUndeclaredUpstream,
			Detail: UndeclaredDetail(e.Instance.Service, up, e.Instance.Ports[UpstreamPortPrefix+up]),
		})
	}
	return out
}

// UndeclaredDetail says what an undeclared upstream port means and what to
// do about it.
func UndeclaredDetail(service, upstream string, port int) string {
	return fmt.Sprintf("the scheduler gives service %s an upstream port %d for %s, but the policy declares no upstream %q in service %q: its sidecar opens no listener there; add the upstream to the policy or remove it from the job",
		service, port, upstream, upstream, service)
}
