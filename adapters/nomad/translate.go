package nomad

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Port labels of a group's network that the adapter reads (see doc.go).
const (
	// LabelMesh is the default label of the sidecar's inbound mTLS port.
	LabelMesh = "mesh"
	// LabelUpstreamPrefix starts the label of a port the sidecar binds for
	// an upstream: upstream_api is Ports["upstream:api"].
	LabelUpstreamPrefix = "upstream_"
	// TagMeshPort, as a tag weft_mesh_port=LABEL on a service, names its
	// mesh port when a group registers more than one meshed service.
	TagMeshPort = "weft_mesh_port"
	// TagMesh, as a tag weft_mesh=false, keeps a service out of the mesh
	// (a metrics endpoint in a meshed group, say).
	TagMesh = "weft_mesh"
	// TagUpstreamPrefix starts a tag weft_upstream_<name>=<port>: where the
	// sidecar listens for upstream <name> inside a bridge-mode allocation,
	// which has no port block for it (every port block of a bridge network
	// is published on the host).
	TagUpstreamPrefix = "weft_upstream_"
)

// Labels the adapter puts on every instance: the Nomad facts.
const (
	FactNamespace  = "nomad_namespace"
	FactJob        = "nomad_job"
	FactGroup      = "nomad_group"
	FactTask       = "nomad_task" // the task of a task-level service; empty for a group service
	FactAllocID    = "nomad_alloc_id"
	FactAllocName  = "nomad_alloc_name"
	FactNodeID     = "nomad_node_id"
	FactNode       = "nomad_node"
	FactDatacenter = "nomad_datacenter"
	FactJobVersion = "nomad_job_version"
	FactCanary     = "nomad_canary"
)

// State is what the adapter reads from Nomad for one snapshot: every
// native service registration and every allocation they point at.
type State struct {
	Services []*api.ServiceRegistration
	Allocs   []*api.AllocationListStub
	// Deployments are the running deployments: an allocation one placed is
	// not routed to before Nomad finds it healthy.
	Deployments []*api.Deployment `json:",omitempty"`
	// AllocAddresses, with the option advertise = "alloc", holds the own
	// address of every allocation in a network namespace, by allocation
	// ID: callers dial it there, on the mesh port inside.
	AllocAddresses map[string]string `json:",omitempty"`
	// Checks holds, by allocation ID, the Nomad service checks of every
	// running allocation whose group declares checks on a native service:
	// an instance is passing only while the checks of its service pass.
	Checks map[string]*AllocChecks `json:",omitempty"`
}

// InstanceID is the instance ID of service in an allocation:
// "<alloc ID>/<service>". A sidecar task passes the same string, built
// from ${NOMAD_ALLOC_ID}, as --instance.
func InstanceID(allocID, service string) string { return allocID + "/" + service }

// Translate turns what Nomad reports into the mesh's instances: one per
// native service registration whose allocation is not terminal and whose
// group network has a mesh port. Records that cannot be used are skipped
// and reported as warnings; the rest of the snapshot stands. It is pure, and
// the translate step of the adapter's sdk.Loop.
func Translate(st State) (model.Snapshot, []sdk.Diagnostic) {
	allocs := make(map[string]*api.AllocationListStub, len(st.Allocs))
	for _, a := range st.Allocs {
		if a != nil {
			allocs[a.ID] = a
		}
	}
	deploying := map[string]*api.Deployment{} // namespace/job -> its running deployment
	for _, d := range st.Deployments {
		if d != nil && d.Status == api.DeploymentStatusRunning {
			deploying[d.Namespace+"/"+d.JobID] = d
		}
	}
	regs := append([]*api.ServiceRegistration{}, st.Services...)
	sort.SliceStable(regs, func(i, j int) bool { return regs[i].ID < regs[j].ID })

	var cands []model.Instance
	var diags []sdk.Diagnostic
	for _, reg := range regs {
		if reg == nil {
			continue
		}
		alloc := allocs[reg.AllocID]
		if alloc == nil || terminal(alloc) {
			// Deregistration follows a stopped allocation within moments.
			continue
		}
		// Placed by a running deployment (created with it or after it; allocations it
		// updates in place were created before and keep serving).
		d := deploying[alloc.Namespace+"/"+alloc.JobID]
		placed := d != nil && alloc.JobVersion == d.JobVersion && alloc.CreateIndex >= d.CreateIndex
		allocAddr := st.AllocAddresses[alloc.ID]
		if st.AllocAddresses != nil && allocAddr == "" && inNamespace(alloc) {
			// advertise = "alloc", and Nomad has not reported this
			// allocation's own address yet: leave it out until it has,
			// rather than advertise the node's address for a moment (a
			// sidecar that joined then would bind the wildcard address
			// and could not move to the allocation's).
			continue
		}
		in, ok, err := translateOne(reg, alloc, placed, allocAddr, st.Checks[alloc.ID])
		if err != nil {
			diags = append(diags, sdk.Droppedf(InstanceID(reg.AllocID, reg.ServiceName), sdk.ReasonInvalidRecord,
				fmt.Sprintf("skipping service %s of allocation %s", reg.ServiceName, reg.AllocID), "%v", err))
			continue
		}
		if !ok {
			continue // not in the mesh: the group has no mesh port
		}
		cands = append(cands, in)
	}
	// One sidecar serves one service: two registrations of an allocation
	// on one mesh port (or of one service twice) leave both out.
	meshKey := func(in model.Instance) string {
		return in.Labels[FactAllocID] + "/" + strconv.Itoa(in.Ports[model.PortMesh])
	}
	onPort, perID := map[string][]string{}, map[string]int{}
	for _, in := range cands {
		onPort[meshKey(in)] = append(onPort[meshKey(in)], in.Service)
		perID[in.ID]++
	}
	var out []model.Instance
	for _, in := range cands {
		k := meshKey(in)
		switch {
		case perID[in.ID] > 1:
			diags = append(diags, sdk.Droppedf(in.ID, sdk.ReasonDuplicateID, "skipping "+in.ID+": registered twice",
				"Service %s is registered twice in allocation %s; a meshed service needs one registration per group.", in.Service, in.Labels[FactAllocID]))
		case len(onPort[k]) > 1:
			diags = append(diags, sdk.Droppedf(in.ID, sdk.ReasonInvalidRecord, fmt.Sprintf("skipping service %s of allocation %s: its mesh port is shared", in.Service, in.Labels[FactAllocID]),
				"Services %s of one allocation use the same mesh port %d, and one sidecar serves one service. Tag all but one with %s=false, or give each its own mesh port with %s=<port label>.",
				strings.Join(onPort[k], ", "), in.Ports[model.PortMesh], TagMesh, TagMeshPort))
		default:
			out = append(out, in)
		}
	}
	model.SortInstances(out)
	return model.Snapshot{Adapter: Name, Instances: out}, append(diags, checkDiags(st, regs)...)
}

// checkDiags reports the checks Translate could not apply: results it
// could not read, and checks of a service no registration of the
// allocation carries (Nomad reports check results under the service name
// as the job writes it, before ${...} interpolation).
func checkDiags(st State, regs []*api.ServiceRegistration) []sdk.Diagnostic {
	names := map[string]map[string]bool{} // alloc -> registered service names
	for _, r := range regs {
		if r != nil {
			if names[r.AllocID] == nil {
				names[r.AllocID] = map[string]bool{}
			}
			names[r.AllocID][r.ServiceName] = true
		}
	}
	allocs := make([]string, 0, len(st.Checks))
	for id := range st.Checks {
		allocs = append(allocs, id)
	}
	sort.Strings(allocs)
	var diags []sdk.Diagnostic
	for _, id := range allocs {
		c := st.Checks[id]
		if c == nil {
			continue
		}
		if c.Err != "" {
			diags = append(diags, sdk.Warningf("cannot read the checks of allocation "+id,
				"Reading the service check results of allocation %s: %s. Its instances are warning (still routed) until they can be read; check that the Nomad client of its node answers.", id, c.Err))
		}
		var svcs []string
		for svc := range c.Declared {
			if !names[id][svc] {
				svcs = append(svcs, svc)
			}
		}
		sort.Strings(svcs)
		for _, svc := range svcs {
			diags = append(diags, sdk.Warningf(fmt.Sprintf("checks of service %s in allocation %s not applied", svc, id),
				"The job declares checks on service %q, but allocation %s registers no service of that name, so its checks decide no instance's health. Nomad reports check results under the name the job writes; a name built with ${...} is registered under another: give a meshed service with checks a literal name.", svc, id))
		}
	}
	return diags
}

// translateOne builds the instance of one registration; ok is false when
// the service is not meant for the mesh.
func translateOne(reg *api.ServiceRegistration, alloc *api.AllocationListStub, placed bool, allocAddr string, checks *AllocChecks) (in model.Instance, ok bool, err error) {
	tags, meta := splitTags(reg.Tags)
	if v, set := meta[TagMesh]; set {
		if on, err := strconv.ParseBool(v); err == nil && !on {
			return in, false, nil
		}
		delete(meta, TagMesh)
	}
	meshLabel := LabelMesh
	if l, set := meta[TagMeshPort]; set {
		meshLabel = l
		delete(meta, TagMeshPort)
	}
	var ports []api.PortMapping
	if alloc.AllocatedResources != nil {
		ports = alloc.AllocatedResources.Shared.Ports
	}
	// The canary flag and the job version are in Meta too, so that policy
	// subsets can select them (subset "canary" { meta = { nomad_canary = "true" } }).
	labels := facts(reg, alloc)
	meta[FactCanary], meta[FactJobVersion] = labels[FactCanary], labels[FactJobVersion]
	in = model.Instance{
		ID:        InstanceID(alloc.ID, reg.ServiceName),
		Service:   reg.ServiceName,
		Namespace: reg.Namespace,
		Ports:     map[string]int{model.PortApp: reg.Port},
		Meta:      meta,
		Tags:      tags,
		Health:    health(alloc, placed, checks, reg.ServiceName),
		Labels:    labels,
		Workload:  workload(reg, alloc),
		Node:      alloc.NodeID, // where Nomad placed it: a node proxy serves only its own node's
	}
	var meshIP string
	for _, p := range ports {
		switch {
		case p.Label == meshLabel:
			in.Ports[model.PortMesh] = p.Value
			meshIP = p.HostIP
		case strings.HasPrefix(p.Label, LabelUpstreamPrefix):
			svc := strings.ReplaceAll(strings.TrimPrefix(p.Label, LabelUpstreamPrefix), "_", "-")
			in.Ports["upstream:"+svc] = p.Value
		}
	}
	if in.Ports[model.PortMesh] == 0 {
		if meshLabel != LabelMesh {
			return in, false, fmt.Errorf("its tag %s=%s names a port the group's network does not have; add port %q to the group's network or fix the tag", TagMeshPort, meshLabel, meshLabel)
		}
		return in, false, nil
	}
	in.Address = meshIP
	if _, perr := netip.ParseAddr(in.Address); perr != nil {
		in.Address = reg.Address
	}
	if err := isolate(&in, alloc, meshLabel, meta, allocAddr); err != nil {
		return in, false, err
	}
	if reg.Port == 0 {
		delete(in.Ports, model.PortApp)
	}
	if err := in.Validate(); err != nil {
		return in, false, err
	}
	return in, true, nil
}

// isolate sets the instance's Isolation from its group's network mode
// and, in a network namespace of its own, MeshListen (the mesh port inside
// it) and the upstream ports its tags carry.
// inNamespace reports whether the allocation's group has a network
// namespace of its own (bridge or CNI networking).
func inNamespace(alloc *api.AllocationListStub) bool {
	r := alloc.AllocatedResources
	if r == nil || len(r.Shared.Networks) == 0 || r.Shared.Networks[0] == nil {
		return false
	}
	m := r.Shared.Networks[0].Mode
	return m == "bridge" || strings.HasPrefix(m, "cni/")
}

func isolate(in *model.Instance, alloc *api.AllocationListStub, meshLabel string, meta map[string]string, allocAddr string) error {
	if !inNamespace(alloc) {
		// host networking (mode "" or "host"): the app's port and the
		// upstream ports are on the node, beside the sidecar.
		in.Isolation = model.IsolationNone
		return nil
	}
	in.Isolation = model.IsolationNetNS
	for _, p := range alloc.AllocatedResources.Shared.Ports {
		if p.Label == meshLabel {
			inside := p.To
			if inside <= 0 {
				inside = p.Value // Nomad maps the host port to the same port inside
			}
			in.MeshListen = net.JoinHostPort("0.0.0.0", strconv.Itoa(inside))
			if _, err := netip.ParseAddr(allocAddr); err == nil {
				// advertise = "alloc": callers dial the allocation itself
				in.Address, in.Ports[model.PortMesh], in.MeshListen = allocAddr, inside, ""
			}
		}
	}
	for k, v := range meta {
		name, ok := strings.CutPrefix(k, TagUpstreamPrefix)
		if !ok {
			continue
		}
		delete(meta, k)
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 || !validUpstream(name) {
			return fmt.Errorf("its tag %s=%s is not %s<upstream>=<port 1-65535>; fix the tag (weft nomad render writes it)", k, v, TagUpstreamPrefix)
		}
		in.Ports["upstream:"+strings.ReplaceAll(name, "_", "-")] = port
	}
	return nil
}

func validUpstream(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// splitTags separates key=value tags, which become Meta (and so can select
// subsets), from plain tags.
func splitTags(all []string) (tags []string, meta map[string]string) {
	meta = map[string]string{}
	for _, t := range all {
		if k, v, ok := strings.Cut(t, "="); ok && k != "" {
			meta[k] = v
			continue
		}
		tags = append(tags, t)
	}
	return tags, meta
}

func terminal(a *api.AllocationListStub) bool {
	if a.DesiredStatus != "" && a.DesiredStatus != api.AllocDesiredStatusRun {
		return true
	}
	switch a.ClientStatus {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}

// health is the health of the instance of service in allocation a;
// placed says a running deployment placed the allocation, checks are the
// allocation's service checks (nil: none declared).
func health(a *api.AllocationListStub, placed bool, checks *AllocChecks, service string) model.Health {
	// In a deployment, Nomad says when an allocation is healthy (its checks
	// pass, or its tasks ran for min_healthy_time): until then, and if it
	// says unhealthy, no caller is sent there.
	d := a.DeploymentStatus
	if d != nil && d.Healthy != nil && !*d.Healthy {
		return model.HealthCritical
	}
	if (d == nil || d.Healthy == nil) && placed {
		return model.HealthCritical
	}
	switch a.ClientStatus {
	case api.AllocClientStatusRunning:
		if downTask(a) != "" {
			// Nomad keeps the allocation running while one of its
			// tasks (the app, or the sidecar) waits to be restarted.
			return model.HealthCritical
		}
		// Nomad does not take a service whose check fails out of its
		// registrations: the adapter reads the results itself.
		h, _ := checksHealth(checks, service)
		return h
	case api.AllocClientStatusUnknown:
		return model.HealthWarning
	}
	// Pending: the sidecar may already be joining (the registry holds the
	// instance), but no caller is sent there before the tasks run.
	return model.HealthCritical
}

// downTask names a task of a running allocation that is down: pending
// again after it ran (killed or crashed, waiting out its restart delay),
// or dead after a failure. A task that has not started yet (a poststop
// task) or finished successfully (a prestart or poststart task that is
// not a sidecar) is not down. "" when every task is up, or when the
// allocation was listed without its task states.
func downTask(a *api.AllocationListStub) string {
	names := make([]string, 0, len(a.TaskStates))
	for name := range a.TaskStates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ts := a.TaskStates[name]
		if ts == nil {
			continue
		}
		switch ts.State {
		case "pending": // Nomad's structs.TaskStatePending; the api package has no constant
			if !ts.StartedAt.IsZero() || !ts.LastRestart.IsZero() || ts.Restarts > 0 {
				return name
			}
		case "dead":
			if ts.Failed {
				return name
			}
		}
	}
	return ""
}

func facts(reg *api.ServiceRegistration, a *api.AllocationListStub) map[string]string {
	canary := a.DeploymentStatus != nil && a.DeploymentStatus.Canary
	return map[string]string{
		FactNamespace:  reg.Namespace,
		FactJob:        a.JobID,
		FactGroup:      a.TaskGroup,
		FactTask:       taskOf(reg, a),
		FactAllocID:    a.ID,
		FactAllocName:  a.Name,
		FactNodeID:     a.NodeID,
		FactNode:       a.NodeName,
		FactDatacenter: reg.Datacenter,
		FactJobVersion: strconv.FormatUint(a.JobVersion, 10),
		FactCanary:     strconv.FormatBool(canary),
	}
}

// workload names the Nomad workload that registered reg, from the
// allocation Nomad placed (namespace, job, group) and the registration's
// own ID (task), for service bindings in policy.
func workload(reg *api.ServiceRegistration, a *api.AllocationListStub) map[string]string {
	ns := a.Namespace
	if ns == "" {
		ns = reg.Namespace
	}
	w := map[string]string{model.WorkloadScheduler: "nomad", "namespace": ns, "job": a.JobID, "group": a.TaskGroup}
	if task := taskOf(reg, a); task != "" {
		w["task"] = task // a group service has none
	}
	return w
}

// taskOf reads the task of a task-level service from the registration ID,
// which Nomad builds as _nomad-task-<alloc>-<task>-<service>-<port label>
// (and _nomad-task-<alloc>-group-<group>-<service>-<port label> for a
// group service, whose task is empty).
func taskOf(reg *api.ServiceRegistration, a *api.AllocationListStub) string {
	rest, ok := strings.CutPrefix(reg.ID, "_nomad-task-"+a.ID+"-")
	if !ok || strings.HasPrefix(rest, "group-"+a.TaskGroup+"-"+reg.ServiceName+"-") {
		return ""
	}
	if i := strings.Index(rest, "-"+reg.ServiceName+"-"); i > 0 {
		return rest[:i]
	}
	return ""
}
