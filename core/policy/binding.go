package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/weftmesh/weft/core/model"
)

// BindingMode says what happens to an instance whose workload no binding of
// its service names.
type BindingMode string

const (
	// BindingStrict (the default): such an instance gets no certificate
	// and no caller's traffic.
	BindingStrict BindingMode = "strict"
	// BindingPermissive keeps the behaviour from before bindings, for a
	// migration: any workload that registers a service name gets that
	// service's identity. The controller warns about every such instance.
	BindingPermissive BindingMode = "permissive"
)

// Permissive reports whether the mesh issues identities to unbound
// workloads.
func (m Mesh) Permissive() bool { return m.IdentityBinding == BindingPermissive }

// Binding names the scheduler workloads allowed to serve a service: an
// instance is bound when its Workload (model.Instance.Workload) has
// Scheduler as its scheduler and every key of Match with the same value.
// A Match value of Wildcard requires the key to be present with any value;
// the HCL compiler allows it only where that is safe (a Nomad job's group
// and task).
type Binding struct {
	Scheduler string
	Match     map[string]string
}

// Binds reports whether b names workload w.
func (b Binding) Binds(w map[string]string) bool {
	if b.Scheduler == "" || w[model.WorkloadScheduler] != b.Scheduler {
		return false
	}
	for k, v := range b.Match {
		got, ok := w[k]
		if !ok || got == "" {
			return false
		}
		if v != Wildcard && got != v {
			return false
		}
	}
	return true
}

// UnboundError says that a workload may not serve a service, and what to
// add to the policy to let it.
type UnboundError struct {
	Service  string
	Workload map[string]string
}

func (e *UnboundError) Error() string {
	return fmt.Sprintf("workload %s may not serve service %q: no binding of the service names it. "+
		"If it should, add to service %q: %s", DescribeWorkload(e.Workload), e.Service, e.Service, BindingHint(e.Workload))
}

// Bound returns nil when a binding of the service names the workload, and
// an *UnboundError otherwise, whatever the mesh's IdentityBinding mode (the
// caller decides what an unbound workload may still do).
func (p *Policy) Bound(service string, workload map[string]string) error {
	for _, b := range p.Services[service].Bindings {
		if b.Binds(workload) {
			return nil
		}
	}
	return &UnboundError{Service: service, Workload: workload}
}

// DescribeWorkload formats a workload for messages: `nomad
// namespace="shop" job="catalog" group="web" task="app"`, keys sorted.
func DescribeWorkload(w map[string]string) string {
	sched := w[model.WorkloadScheduler]
	if sched == "" {
		if len(w) == 0 {
			return "(the adapter reported no workload)"
		}
		sched = "(no scheduler)"
	}
	keys := make([]string, 0, len(w))
	for k := range w {
		if k != model.WorkloadScheduler {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(sched)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, w[k])
	}
	return b.String()
}

// bindingKeys are the Workload keys a binding hint names, per scheduler:
// what identifies a workload without pinning one copy of it.
var bindingKeys = map[string][]string{
	"nomad":      {"namespace", "job"},
	"kubernetes": {"namespace", "service_account"},
	"mesos":      {"principal", "role", "framework_name"},
	"local":      {"name"},
}

// BindingHint is the binding block, in HCL, that names workload w: on
// one line when it has one attribute, else one attribute per line.
func BindingHint(w map[string]string) string {
	sched := w[model.WorkloadScheduler]
	keys, ok := bindingKeys[sched]
	if !ok {
		return "nothing can: the adapter reported no scheduler workload for this instance, so no binding can name it; fix the adapter"
	}
	var attrs []string
	for _, k := range keys {
		v := w[k]
		if v == "" {
			continue
		}
		attrs = append(attrs, fmt.Sprintf("%s = %q", k, v))
		if sched == "mesos" {
			break // one of principal, role, framework_name is enough
		}
	}
	if len(attrs) == 0 {
		return fmt.Sprintf("nothing can: the %s workload carries none of %s", sched, strings.Join(keys, ", "))
	}
	if len(attrs) == 1 {
		return fmt.Sprintf("binding %q { %s }", sched, attrs[0])
	}
	return fmt.Sprintf("binding %q {\n  %s\n}", sched, strings.Join(attrs, "\n  "))
}
