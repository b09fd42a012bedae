package model

import "errors"

// Dropped is an instance left out of the mesh, and why: a record the
// adapter could not translate (its snapshot's Dropped), one the registry
// refused (Validate), or one part of it compilation ignored (an upstream
// port the policy does not declare). The controller gathers them in one
// place and its status lists them: nothing is dropped without a word.
type Dropped struct {
	Adapter  string `json:"adapter"`
	Instance string `json:"instance"`
	// Reason is one of the Reason constants, or an adapter's own word.
	Reason string `json:"reason"`
	// Detail says what is wrong and what to do.
	Detail string `json:"detail"`
}

// Reasons an instance (or part of it) is dropped.
const (
	// ReasonNoMeshPort: the instance has no "mesh" port (a Mesos task
	// without a port named mesh, a record without PortMesh).
	ReasonNoMeshPort = "no_mesh_port"
	// ReasonNoServiceName: no service name, or one that is not a DNS
	// label.
	ReasonNoServiceName = "no_service_name"
	// ReasonUnnamedPort: a port without a name.
	ReasonUnnamedPort = "unnamed_port"
	// ReasonUndeclaredUpstream: an upstream port ("upstream:<service>")
	// for a service the policy does not declare as an upstream of the
	// instance's service; the instance is served, that port is ignored.
	ReasonUndeclaredUpstream = "undeclared_upstream"
	// ReasonDuplicateID: the instance's ID is reported twice, or by two
	// adapters.
	ReasonDuplicateID = "duplicate_id"
	// ReasonInvalidRecord: any other record the registry refuses.
	ReasonInvalidRecord = "invalid_record"
	// ReasonAdapterSkipped: an adapter skipped the instance without
	// naming a reason.
	ReasonAdapterSkipped = "adapter_skipped"
)

// Errors Validate wraps, so a caller can tell the reasons apart
// (DropReason).
var (
	ErrNoMeshPort    = errors.New(`no "mesh" port`)
	ErrNoServiceName = errors.New("no usable service name")
	ErrUnnamedPort   = errors.New("unnamed port")
)

// reasonedError is an error that says what it says and is also kind, for
// errors.Is.
type reasonedError struct{ err, kind error }

func reasoned(kind, err error) error { return reasonedError{err: err, kind: kind} }

func (e reasonedError) Error() string        { return e.err.Error() }
func (e reasonedError) Is(target error) bool { return target == e.kind }

// DropReason is the Reason for a record Validate refused with err.
func DropReason(err error) string {
	switch {
	case errors.Is(err, ErrNoMeshPort):
		return ReasonNoMeshPort
	case errors.Is(err, ErrNoServiceName):
		return ReasonNoServiceName
	case errors.Is(err, ErrUnnamedPort):
		return ReasonUnnamedPort
	}
	return ReasonInvalidRecord
}
