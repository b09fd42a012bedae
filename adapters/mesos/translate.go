package mesos

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Labels a task carries to join the mesh (see doc.go).
const (
	LabelService    = "weft.service"
	LabelNamespace  = "weft.namespace"
	LabelPortPrefix = "weft.port."
	labelPrefix     = "weft."
)

// Scheduler labels set on every instance.
const (
	LabelFrameworkID   = "mesos.framework_id"
	LabelFrameworkName = "mesos.framework"
	LabelTaskID        = "mesos.task_id"
	LabelAgentID       = "mesos.agent_id"
	LabelExecutorID    = "mesos.executor_id"
)

// Translate turns the cached cluster state into instances, sorted by ID,
// with a warning for every task that asks for the mesh but cannot join
// it. It is pure: the same state always gives the same answer. It is the
// translate step of the adapter's sdk.Loop.
func Translate(s *State) (model.Snapshot, []sdk.Diagnostic) {
	keys := make([]string, 0, len(s.Tasks))
	for k := range s.Tasks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var (
		out   []model.Instance
		diags []sdk.Diagnostic
		seen  = map[string]string{} // instance ID -> framework
	)
	for _, k := range keys {
		t := s.Tasks[k]
		in, ok, problem := translateTask(s, t)
		if problem.text != "" {
			diags = append(diags, sdk.Droppedf(t.TaskID.Value, problem.reason, fmt.Sprintf("Mesos task %s skipped", t.TaskID.Value), "%s", problem.text))
		}
		if !ok {
			continue
		}
		if other, dup := seen[in.ID]; dup {
			diags = append(diags, sdk.Droppedf(t.TaskID.Value, sdk.ReasonDuplicateID, fmt.Sprintf("Mesos task %s skipped", t.TaskID.Value),
				"frameworks %s and %s both run a task with this ID; only the first is meshed. Give tasks unique IDs.", other, t.FrameworkID.Value))
			continue
		}
		seen[in.ID] = t.FrameworkID.Value
		out = append(out, in)
	}
	model.SortInstances(out)
	return model.Snapshot{Adapter: Name, Instances: out}, diags
}

// skip explains why a task that asks for the mesh is left out: reason is
// one of the sdk Reason constants, text what to do.
type skip struct{ reason, text string }

// translateTask turns one task into an instance. ok is false for tasks
// that are not (or not yet) meshed; problem explains a skip the user
// should hear about.
func translateTask(s *State, t mesos.Task) (in model.Instance, ok bool, problem skip) {
	labels := map[string]string{}
	if t.Labels != nil {
		for _, l := range t.Labels.Labels {
			labels[l.Key] = l.GetValue()
		}
	}
	if labels[LabelProxy] == NodeProxyValue {
		return in, false, skip{} // a node proxy (nodeproxy.go), not an instance
	}
	optedIn := false
	for k := range labels {
		if strings.HasPrefix(k, labelPrefix) {
			optedIn = true
		}
	}
	service := labels[LabelService]
	if service == "" && t.Discovery != nil {
		service = t.Discovery.GetName()
	}
	if service == "" {
		if optedIn {
			return in, false, skip{sdk.ReasonNoServiceName, "it has weft.* labels but no service name: add a weft.service label or a DiscoveryInfo name"}
		}
		return in, false, skip{}
	}
	if t.GetState() != mesos.TASK_RUNNING {
		return in, false, skip{} // not serving yet, or no longer
	}

	ports := map[string]int{}
	if t.Discovery != nil && t.Discovery.Ports != nil {
		for _, p := range t.Discovery.Ports.Ports {
			if name := p.GetName(); name != "" && p.Number > 0 {
				ports[name] = int(p.Number)
			}
		}
	}
	for k, v := range labels {
		if name, isPort := strings.CutPrefix(k, LabelPortPrefix); isPort && name != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65535 {
				return in, false, skip{sdk.ReasonInvalidRecord, fmt.Sprintf("label %s = %q is not a port number (1-65535)", k, v)}
			}
			ports[name] = n
		}
	}
	if ports[model.PortMesh] == 0 {
		if optedIn {
			return in, false, skip{sdk.ReasonNoMeshPort, fmt.Sprintf("service %q has no port named %q for its sidecar: add a DiscoveryInfo port named mesh or a weft.port.mesh label", service, model.PortMesh)}
		}
		return in, false, skip{} // a discoverable task that is not meshed
	}

	addr, why := address(s, t)
	if addr == "" {
		return in, false, skip{sdk.ReasonInvalidRecord, why}
	}

	meta := map[string]string{}
	for k, v := range labels {
		if !strings.HasPrefix(k, labelPrefix) {
			meta[k] = v
		}
	}
	// The proxy mode: weft.proxy_mode wins over a plain weft_proxy_mode
	// label (which, like any label, lands in Meta as it is).
	switch mode, given := labels[LabelProxyMode]; {
	case !given:
	case mode == NodeProxyValue:
		meta[model.MetaProxyMode] = model.ProxyModeNode
	case mode == "sidecar" || mode == "instance":
		delete(meta, model.MetaProxyMode)
	default:
		return in, false, skip{sdk.ReasonInvalidRecord, fmt.Sprintf("label %s = %q is not a proxy mode: use node (served by its agent's node proxy) or sidecar (the default); Mesos has no application proxies", LabelProxyMode, mode)}
	}
	sched := map[string]string{
		LabelFrameworkID: t.FrameworkID.Value,
		LabelTaskID:      t.TaskID.Value,
		LabelAgentID:     t.AgentID.Value,
	}
	if f, ok := s.Frameworks[t.FrameworkID.Value]; ok && f.Name != "" {
		sched[LabelFrameworkName] = f.Name
	}
	if t.ExecutorID != nil && t.ExecutorID.Value != "" {
		sched[LabelExecutorID] = t.ExecutorID.Value
	}
	in = model.Instance{
		ID:        t.TaskID.Value,
		Service:   service,
		Namespace: labels[LabelNamespace],
		Address:   addr,
		Ports:     ports,
		Meta:      meta,
		Health:    health(t),
		Labels:    sched,
		// The task group shares the agent's network (see doc.go).
		Isolation: model.IsolationNone,
		Workload:  workload(s, t),
		Node:      t.AgentID.Value, // the agent: a node proxy serves only its own agent's tasks
	}
	return in, true, skip{}
}

// workload names the Mesos framework that launched t, as the master
// reports it (GET_STATE), for service bindings in policy: its ID, name,
// role (the framework's only role, when it has one) and principal.
func workload(s *State, t mesos.Task) map[string]string {
	w := map[string]string{model.WorkloadScheduler: "mesos", "framework": t.FrameworkID.Value}
	f, ok := s.Frameworks[t.FrameworkID.Value]
	if !ok {
		return w
	}
	if f.Name != "" {
		w["framework_name"] = f.Name
	}
	role := f.GetRole()
	if len(f.Roles) == 1 {
		role = f.Roles[0]
	}
	if role != "" && role != "*" {
		w["role"] = role
	}
	if p := f.GetPrincipal(); p != "" {
		w["principal"] = p
	}
	return w
}

// latest is the task's most recent status, by timestamp (the master lists
// them in order, but events may have been appended out of it).
func latest(t mesos.Task) *mesos.TaskStatus {
	var best *mesos.TaskStatus
	for i := range t.Statuses {
		st := &t.Statuses[i]
		if best == nil || st.GetTimestamp() >= best.GetTimestamp() {
			best = st
		}
	}
	return best
}

// labelNetworkScope is Marathon's label on a DiscoveryInfo port: "host"
// when the port is the agent's (host networking, or a bridge's host port
// mapping), "container" when it is the container's own.
const labelNetworkScope = "network-scope"

// hostScoped reports whether the task's ports are the agent's: the mesh
// port's network-scope label says so, or, when the mesh port is not a
// DiscoveryInfo port, the first port that has one.
func hostScoped(t mesos.Task) bool {
	if t.Discovery == nil || t.Discovery.Ports == nil {
		return false
	}
	scope := ""
	for _, p := range t.Discovery.Ports.Ports {
		v := ""
		if p.Labels != nil {
			for _, l := range p.Labels.Labels {
				if l.Key == labelNetworkScope {
					v = l.GetValue()
				}
			}
		}
		if p.GetName() == model.PortMesh {
			return v == "host"
		}
		if scope == "" {
			scope = v
		}
	}
	return scope == "host"
}

// address is the task's IP: its agent's when its ports are host-scoped
// (a bridge network's mapped ports are reached there, not at the
// container's IP); else the IP in its latest status that carries one;
// else its agent's hostname if that is an IP. Names are not resolved:
// the adapter never looks hosts up.
func address(s *State, t mesos.Task) (string, string) {
	if hostScoped(t) {
		if agent, ok := s.Agents[t.AgentID.Value]; ok {
			if a, err := netip.ParseAddr(agent.Hostname); err == nil {
				return a.String(), ""
			}
			return "", fmt.Sprintf("its ports are the agent's (network-scope=host) and its agent's hostname %q is not an IP address: start the agent with --hostname=<its IP>", agent.Hostname)
		}
		return "", fmt.Sprintf("its ports are the agent's (network-scope=host) and its agent %s is unknown", t.AgentID.Value)
	}
	for i := len(t.Statuses) - 1; i >= 0; i-- {
		cs := t.Statuses[i].ContainerStatus
		if cs == nil {
			continue
		}
		for _, ni := range cs.NetworkInfos {
			for _, ip := range ni.IPAddresses {
				if a, err := netip.ParseAddr(ip.GetIPAddress()); err == nil {
					return a.String(), ""
				}
			}
		}
	}
	agent, ok := s.Agents[t.AgentID.Value]
	if !ok {
		return "", fmt.Sprintf("no container IP in its statuses and its agent %s is unknown", t.AgentID.Value)
	}
	if a, err := netip.ParseAddr(agent.Hostname); err == nil {
		return a.String(), ""
	}
	return "", fmt.Sprintf("no container IP in its statuses and its agent's hostname %q is not an IP address: start the agent with --hostname=<its IP> or give the task a container network", agent.Hostname)
}

// health is the task's health: the healthy field of its most recent
// status that carries one (a health check result; a later status without
// one, such as a check update or a reconciliation, does not erase it),
// critical while it declares a health_check without a result, unknown
// (routed to) without either. Only TASK_RUNNING tasks get here.
func health(t mesos.Task) model.Health {
	var last *mesos.TaskStatus
	for i := range t.Statuses {
		st := &t.Statuses[i]
		if st.Healthy != nil && (last == nil || st.GetTimestamp() >= last.GetTimestamp()) {
			last = st
		}
	}
	if last != nil {
		if *last.Healthy {
			return model.HealthPassing
		}
		return model.HealthCritical
	}
	if t.HealthCheck != nil {
		// It declares a health check that has not reported yet: Mesos
		// does not call it healthy, so it gets no traffic until it does.
		return model.HealthCritical
	}
	return model.HealthUnknown
}
