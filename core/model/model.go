package model

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"sort"
)

// Health is an instance's health as its scheduler reports it.
type Health string

const (
	HealthUnknown  Health = ""
	HealthPassing  Health = "passing"
	HealthWarning  Health = "warning"
	HealthCritical Health = "critical"
)

// Well-known port names. An instance of a meshed service has at least the
// application port and the inbound (mesh) port of its sidecar.
const (
	PortApp  = "app"  // where the application listens (reached only by its own sidecar)
	PortMesh = "mesh" // where the sidecar terminates mTLS from other sidecars
)

// DefaultNamespace is used when a record names none.
const DefaultNamespace = "default"

// Snapshot is the whole state one adapter knows, sent in full every time.
type Snapshot struct {
	// Adapter names the adapter that produced the snapshot ("local", "nomad").
	Adapter string
	// Instances is every service instance the adapter knows.
	Instances []Instance
	// Dropped are the instances the adapter left out, and why (the
	// plugin host fills it from the diagnostics that name an instance).
	// The registry ignores it; the controller lists it in its status.
	Dropped []Dropped
	// Seq numbers the snapshot among those of its adapter's stream (0:
	// not numbered). Numbers are unique within a controller process, so
	// a restarted stream never reuses one.
	Seq uint64
	// Delta, when set, says what differs between this snapshot and the
	// one numbered Delta.From: a consumer that holds that one may apply
	// the delta instead of comparing every instance. Instances is whole
	// all the same; a consumer that holds another snapshot ignores Delta.
	Delta *SnapshotDelta
}

// SnapshotDelta is what one snapshot changed from an earlier one of the
// same stream (Snapshot.Delta): a hint that lets the registry do work
// proportional to the change instead of to the mesh.
type SnapshotDelta struct {
	// From is the Seq of the snapshot this one changes.
	From uint64
	// Upserts are the instances added or changed, as Instances has them.
	Upserts []Instance
	// Removed are the IDs that left.
	Removed []string
}

// Instance is one running copy of a service, with the sidecar beside it.
type Instance struct {
	// ID is unique within the adapter (a Nomad alloc ID plus task, a Mesos
	// task ID, a pod UID, a local instance name).
	ID string
	// Service is the logical service name; it becomes the SPIFFE identity.
	Service string
	// Namespace defaults to DefaultNamespace.
	Namespace string
	// Address is the IP the sidecar's mesh port listens on.
	Address string
	// Ports maps a port name (PortApp, PortMesh, others) to a port number.
	Ports map[string]int
	// Meta is free-form metadata (for example version = "v2") used for subsets.
	Meta map[string]string
	// Tags are scheduler tags.
	Tags []string
	// Health is the scheduler's view of the instance's health.
	Health Health
	// Labels are the scheduler's own coordinates: job/group/alloc for Nomad,
	// framework/task for Mesos, namespace/pod for Kubernetes, pid for local.
	Labels map[string]string
	// Workload names the scheduler workload that runs the instance, as the
	// scheduler reports it (never as the instance claims it). Policy binds
	// each service to the workloads allowed to serve it. Keys per scheduler:
	//   nomad:      namespace, job, group, task
	//   kubernetes: namespace, service_account
	//   mesos:      framework (its ID), framework_name, role, principal
	//   local:      name (the workloads file's service block)
	// Workload[WorkloadScheduler] names the scheduler kind.
	Workload map[string]string
	// Isolation says how the app port and the outbound ports are kept from
	// everything but the instance's own sidecar and app.
	Isolation Isolation
	// MeshListen, when set, is where the sidecar's inbound listener binds
	// ("ip:port"), when that differs from Address:Ports[PortMesh]: a host
	// port mapped into the instance's own network namespace (Nomad bridge
	// networking). Callers still dial Address:Ports[PortMesh].
	MeshListen string
	// Node names the node the scheduler placed the instance on, as the
	// scheduler reports it: a Nomad allocation's NodeID, a Kubernetes
	// pod's spec.nodeName, a Mesos task's agent ID, the local adapter's
	// node name (its option node, default the host name). A node proxy
	// (docs/deployment-models.md) is issued certificates only for the
	// instances whose Node is the node its join token names. Empty: the
	// adapter does not report placement, and no node proxy may serve the
	// instance.
	Node string
}

// MetaProxyMode is the Meta key by which an instance that a scheduler's
// own node proxy serves (a Nomad system job, docs/deployment-models.md)
// says so: Meta[MetaProxyMode] == ProxyModeNode. Its adapter sets it from
// the scheduler's record (a Nomad service tag weft_proxy_mode=node); the
// controller admits such a node proxy only for instances that carry it.
const MetaProxyMode = "weft_proxy_mode"

// ProxyModeNode is MetaProxyMode's value for node mode.
const ProxyModeNode = "node"

// WorkloadScheduler is the Workload key that names the scheduler kind
// ("nomad", "kubernetes", "mesos", "local").
const WorkloadScheduler = "scheduler"

// Isolation is how an instance's app and outbound ports are protected.
type Isolation string

const (
	// IsolationUnknown: the adapter did not say; treated as IsolationNone.
	IsolationUnknown Isolation = ""
	// IsolationNone: the app port, or the outbound ports, can be reached
	// beside the sidecar. Status warns about every such instance.
	IsolationNone Isolation = "none"
	// IsolationNetNS: the instance has its own network namespace; the app
	// and the outbound listeners are on its loopback and only the
	// sidecar's mesh port is reachable from outside.
	IsolationNetNS Isolation = "netns"
	// IsolationGuard: the instance shares the host's network, and a kernel
	// rule lets only the instance's own sidecar reach its app port and
	// only its own app use its outbound ports.
	IsolationGuard Isolation = "guard"
)

// Isolated reports whether the instance's app is reachable only through
// its sidecar, as its adapter says.
func (in Instance) Isolated() bool {
	return in.Isolation == IsolationNetNS || in.Isolation == IsolationGuard
}

var serviceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName reports whether s is a usable service or namespace name:
// lower-case letters, digits and dashes, starting and ending with a letter
// or digit, at most 63 characters (a DNS label).
func ValidName(s string) bool { return serviceName.MatchString(s) }

// Validate reports what is wrong with one instance record. The registry
// skips records that fail it and reports them; it never rejects a whole
// snapshot for one bad record.
func (in Instance) Validate() error {
	if in.ID == "" {
		return fmt.Errorf("instance of service %q has no ID", in.Service)
	}
	if !ValidName(in.Service) {
		return reasoned(ErrNoServiceName, fmt.Errorf("instance %s: service name %q is not a DNS label (lower-case letters, digits, dashes)", in.ID, in.Service))
	}
	if in.Namespace != "" && !ValidName(in.Namespace) {
		return fmt.Errorf("instance %s: namespace %q is not a DNS label", in.ID, in.Namespace)
	}
	if _, err := netip.ParseAddr(in.Address); err != nil {
		return fmt.Errorf("instance %s: address %q is not an IP address", in.ID, in.Address)
	}
	for name, p := range in.Ports {
		if name == "" {
			return reasoned(ErrUnnamedPort, fmt.Errorf("instance %s: port %d has no name; name every port (app, mesh, upstream:<service>)", in.ID, p))
		}
		if p <= 0 || p > 65535 {
			return fmt.Errorf("instance %s: port %q = %d is outside 1-65535", in.ID, name, p)
		}
	}
	switch in.Isolation {
	case IsolationUnknown, IsolationNone, IsolationNetNS, IsolationGuard:
	default:
		return fmt.Errorf("instance %s: isolation %q is not one of none, netns, guard", in.ID, in.Isolation)
	}
	if in.MeshListen != "" {
		if _, err := netip.ParseAddrPort(in.MeshListen); err != nil {
			return fmt.Errorf("instance %s: mesh_listen %q is not ip:port", in.ID, in.MeshListen)
		}
	}
	if in.Ports[PortMesh] == 0 {
		return reasoned(ErrNoMeshPort, fmt.Errorf("instance %s: no %q port: the sidecar's inbound port is required", in.ID, PortMesh))
	}
	return nil
}

// Equal says whether in and o are the same record: every field equal, a
// nil and an empty map or list the same (they compile the same, and the
// adapter protocol carries both as nothing). core/registry's
// TestSameInstanceSeesEveryField fails when Instance gains a field that
// Equal does not compare.
func (in Instance) Equal(o Instance) bool {
	return in.ID == o.ID && in.Service == o.Service && in.Namespace == o.Namespace &&
		in.Address == o.Address && in.Health == o.Health && in.Isolation == o.Isolation &&
		in.MeshListen == o.MeshListen && in.Node == o.Node && sameMap(in.Ports, o.Ports) &&
		sameMap(in.Meta, o.Meta) && slices.Equal(in.Tags, o.Tags) &&
		sameMap(in.Labels, o.Labels) && sameMap(in.Workload, o.Workload)
}

// sameMap is maps.Equal, with an answer at once for one map compared with
// itself: a record handed on unchanged (an adapter's last snapshot, the
// registry's copy of it) shares its maps, and ten thousand of them are
// compared on every change.
func sameMap[K, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() {
		return true
	}
	return maps.Equal(a, b)
}

// NS returns the instance's namespace, defaulted.
func (in Instance) NS() string {
	if in.Namespace == "" {
		return DefaultNamespace
	}
	return in.Namespace
}

// Key identifies an instance across adapters.
func (in Instance) Key(adapter string) string { return adapter + "/" + in.ID }

// SortInstances orders instances by ID, so equal snapshots compare equal.
func SortInstances(ins []Instance) {
	sort.Slice(ins, func(i, j int) bool { return ins[i].ID < ins[j].ID })
}
