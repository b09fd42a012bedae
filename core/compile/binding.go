package compile

import (
	"maps"
	"sort"

	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// ReasonUnbound is the reason Unbound gives for an instance whose workload
// no binding of its service names.
const ReasonUnbound = "unbound workload"

// Skipped is an instance left out of every caller's endpoint set, and why.
type Skipped struct {
	Adapter  string            `json:"adapter"`
	Instance string            `json:"instance"`
	Service  string            `json:"service"`
	Reason   string            `json:"reason"`
	Workload map[string]string `json:"workload,omitempty"`
	// Detail says what to add to the policy.
	Detail string `json:"detail"`
}

// Equal says whether s and o say the same (a nil and an empty workload
// the same).
func (s Skipped) Equal(o Skipped) bool {
	return s.Adapter == o.Adapter && s.Instance == o.Instance && s.Service == o.Service &&
		s.Reason == o.Reason && s.Detail == o.Detail && maps.Equal(s.Workload, o.Workload)
}

// Unbound lists, sorted by instance ID, the instances whose workload no
// binding of their service names (policy.Policy.Bound). In strict mode
// (the default) Compile leaves them out of every endpoint set and the
// config server issues them no certificate; in permissive mode they are
// served anyway and the list is what the controller warns about.
func Unbound(p *policy.Policy, entries []registry.Entry) []Skipped {
	var out []Skipped
	for _, e := range entries {
		if err := p.Bound(e.Instance.Service, e.Instance.Workload); err != nil {
			out = append(out, Skipped{
				Adapter: e.Adapter, Instance: e.Instance.ID, Service: e.Instance.Service,
				Reason: ReasonUnbound, Workload: e.Instance.Workload, Detail: err.Error(),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}

// servable is entries without the instances that may not serve their
// service: unbound workloads in strict mode.
func servable(p *policy.Policy, entries []registry.Entry) []registry.Entry {
	if p.Mesh.Permissive() {
		return entries
	}
	out := make([]registry.Entry, 0, len(entries))
	for _, e := range entries {
		if p.Bound(e.Instance.Service, e.Instance.Workload) == nil {
			out = append(out, e)
		}
	}
	return out
}
