package sdk

import (
	"fmt"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins"
)

// What an adapter implements and exchanges with the controller. These are
// aliases: values of these types are the ones of package plugins and
// core/model, so a third-party adapter needs to import only this package.
type (
	Adapter           = plugins.Adapter
	InfoResponse      = plugins.InfoResponse
	ConfigureRequest  = plugins.ConfigureRequest
	ConfigureResponse = plugins.ConfigureResponse
	MeshContext       = plugins.MeshContext
	WatchRequest      = plugins.WatchRequest
	WatchEvent        = plugins.WatchEvent
	Diagnostic        = plugins.Diagnostic
	Severity          = plugins.Severity
	Snapshot          = model.Snapshot
	Instance          = model.Instance
	Health            = model.Health

	IdentityVerifier       = plugins.IdentityVerifier
	VerifyIdentityRequest  = plugins.VerifyIdentityRequest
	VerifyIdentityResponse = plugins.VerifyIdentityResponse
)

// ProtocolVersion is what an adapter reports in InfoResponse.ProtocolVersion.
const ProtocolVersion = plugins.ProtocolVersion

// Capabilities an adapter may announce in InfoResponse.Capabilities.
const (
	CapRunsInstances = plugins.CapRunsInstances
	CapJoinTokens    = plugins.CapJoinTokens
	// CapVerifiesIdentity: the adapter implements IdentityVerifier.
	CapVerifiesIdentity = plugins.CapVerifiesIdentity
)

// Diagnostic severities.
const (
	SeverityError   = plugins.SeverityError
	SeverityWarning = plugins.SeverityWarning
)

// Instance health.
const (
	HealthUnknown  = model.HealthUnknown
	HealthPassing  = model.HealthPassing
	HealthWarning  = model.HealthWarning
	HealthCritical = model.HealthCritical
)

// Well-known port names: every instance has at least PortMesh.
const (
	PortApp  = model.PortApp
	PortMesh = model.PortMesh
)

// Errorf returns an error diagnostic.
func Errorf(summary, detailFormat string, args ...any) Diagnostic {
	return Diagnostic{Severity: SeverityError, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...)}
}

// Warningf returns a warning diagnostic.
func Warningf(summary, detailFormat string, args ...any) Diagnostic {
	return Diagnostic{Severity: SeverityWarning, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...)}
}

// Droppedf returns the warning an adapter sends for an instance it
// leaves out of its snapshot: the controller counts it under reason and
// names it in `weft status`. Use the Reason constants where one fits.
func Droppedf(instance, reason, summary, detailFormat string, args ...any) Diagnostic {
	d := Warningf(summary, detailFormat, args...)
	d.Instance, d.Reason = instance, reason
	return d
}

// ReasonOf is the Reason for a record Instance.Validate refused with err
// (ReasonInvalidRecord for one it does not tell apart).
func ReasonOf(err error) string { return model.DropReason(err) }

// Reasons for Droppedf (core/model's), and the mark Loop puts on its
// Failing diagnostic.
const (
	ReasonNoMeshPort         = model.ReasonNoMeshPort
	ReasonNoServiceName      = model.ReasonNoServiceName
	ReasonUnnamedPort        = model.ReasonUnnamedPort
	ReasonUndeclaredUpstream = model.ReasonUndeclaredUpstream
	ReasonDuplicateID        = model.ReasonDuplicateID
	ReasonInvalidRecord      = model.ReasonInvalidRecord
	ReasonSourceFailing      = plugins.ReasonSourceFailing
)

// HasErrors reports whether any of diags is an error.
func HasErrors(diags []Diagnostic) bool {
	for _, d := range diags {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}
