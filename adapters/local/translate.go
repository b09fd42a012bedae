package local

import (
	"maps"
	"slices"
	"strconv"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// localState is what translate reads: the runner's view of its instances
// (with their isolation), the problems to report with them, and the
// workloads file they come from.
type localState struct {
	file     string
	statuses []instanceStatus
	diags    []sdk.Diagnostic
}

// translate turns the runner's view of its instances into the snapshot,
// instances sorted by ID, and the problems to report with it. It is pure:
// the same statuses always give the same instances, and the adapter's
// sdk.Loop runs it. An instance is passing while its app and its sidecar
// run and its check (if it declares one) passes, and critical otherwise
// (see doc.go, Health).
func translate(st localState) (model.Snapshot, []sdk.Diagnostic) {
	workloadsFile, sts := st.file, st.statuses
	out := make([]model.Instance, 0, len(sts))
	for _, st := range sts {
		s := st.Spec
		in := model.Instance{
			ID:        s.ID,
			Service:   s.Service,
			Namespace: s.Namespace,
			Address:   s.Address,
			Ports:     s.Ports(),
			Meta:      maps.Clone(s.Meta),
			Tags:      slices.Clone(s.Tags),
			Health:    model.HealthCritical,
			Isolation: st.Isolation,
			Node:      s.Node,
			Workload:  map[string]string{model.WorkloadScheduler: "local", "name": s.Workload},
			Labels: map[string]string{
				"workloads_file": workloadsFile,
				"restarts":       strconv.Itoa(st.Restarts),
			},
		}
		// The proxy mode the workloads file chose, where the controller
		// compares it with the policy's proxy_mode (model.MetaProxyMode):
		// "node" or "application"; none for a sidecar.
		if s.ProxyMode != "" {
			if in.Meta == nil {
				in.Meta = map[string]string{}
			}
			in.Meta[model.MetaProxyMode] = s.ProxyMode
		} else {
			delete(in.Meta, model.MetaProxyMode)
		}
		if st.AppRunning {
			in.Labels["pid"] = strconv.Itoa(st.AppPID)
		}
		if st.ProxyRunning {
			in.Labels["proxy_pid"] = strconv.Itoa(st.ProxyPID)
		}
		in.Health = health(st)
		if s.Check != nil {
			in.Labels["check"] = st.Check.Status
			if st.Check.Status == checkNone {
				in.Labels["check"] = "none"
			}
		}
		out = append(out, in)
	}
	model.SortInstances(out)
	return model.Snapshot{Adapter: Name, Instances: out}, st.diags
}

// health is an instance's health: critical while its app or its sidecar
// does not run (no caller can be served), or while its check has no
// result yet or fails; passing otherwise.
func health(st instanceStatus) model.Health {
	if !st.AppRunning || !st.ProxyRunning {
		return model.HealthCritical
	}
	if st.Spec.Check != nil && st.Check.Status != checkPassing {
		return model.HealthCritical
	}
	return model.HealthPassing
}
