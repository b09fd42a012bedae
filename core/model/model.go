package model

import (
	"fmt"
	"net/netip"
	"regexp"
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
		return fmt.Errorf("instance %s: service name %q is not a DNS label (lower-case letters, digits, dashes)", in.ID, in.Service)
	}
	if in.Namespace != "" && !ValidName(in.Namespace) {
		return fmt.Errorf("instance %s: namespace %q is not a DNS label", in.ID, in.Namespace)
	}
	if _, err := netip.ParseAddr(in.Address); err != nil {
		return fmt.Errorf("instance %s: address %q is not an IP address", in.ID, in.Address)
	}
	for name, p := range in.Ports {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("instance %s: port %q = %d is outside 1-65535", in.ID, name, p)
		}
	}
	if in.Ports[PortMesh] == 0 {
		return fmt.Errorf("instance %s: no %q port: the sidecar's inbound port is required", in.ID, PortMesh)
	}
	return nil
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
