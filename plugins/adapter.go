package plugins

import (
	"context"

	"github.com/weftmesh/weft/core/model"
)

// ProtocolVersion is the adapter protocol version this build speaks. It is
// negotiated by go-plugin (VersionedPlugins) and reported again by Info.
const ProtocolVersion = 1

// PluginName is the key of the adapter plugin in go-plugin's plugin map.
const PluginName = "adapter"

// Capabilities an adapter may report in Info. A gRPC client shim implements
// every method, so optional behaviour is announced here, never detected by
// type assertion.
const (
	// CapRunsInstances: the adapter starts instances and their sidecars
	// itself (the local adapter), and so needs MeshContext.ProxyBinary.
	CapRunsInstances = "runs-instances"
	// CapJoinTokens: the adapter mints single-use join tokens for the
	// sidecars it starts, with MeshContext.JoinKey.
	CapJoinTokens = "join-tokens"
	// CapVerifiesIdentity: the adapter implements IdentityVerifier, so a
	// sidecar may join with the credential its scheduler gave it.
	CapVerifiesIdentity = "verifies-identity"
)

// Adapter is what every scheduler adapter implements, built in or third
// party, in process or behind go-plugin's gRPC.
//
// Lifecycle: the host calls Info, then Configure once, then Watch, which
// blocks, sending the adapter's full snapshot on events every time it
// changes, until ctx is cancelled or it fails. A Watch that returns an error
// is retried by the host with backoff; the last snapshot stays in force.
type Adapter interface {
	Info(ctx context.Context) (*InfoResponse, error)
	Configure(ctx context.Context, req *ConfigureRequest) (*ConfigureResponse, error)
	Watch(ctx context.Context, req *WatchRequest, events chan<- WatchEvent) error
}

// InfoResponse describes an adapter.
type InfoResponse struct {
	Name            string
	Version         string
	ProtocolVersion int
	Capabilities    []string
	// Options are the options the adapter accepts (see OptionSpec).
	Options []OptionSpec
}

// Has reports whether the adapter announced capability c.
func (r *InfoResponse) Has(c string) bool {
	for _, x := range r.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// MeshContext is what an adapter needs to know of the mesh it serves.
type MeshContext struct {
	TrustDomain     string
	ControllerAddrs []string // host:port of the controller's sidecar API
	TrustBundlePEM  []byte   // roots a sidecar uses to verify the controller
	JoinKey         []byte   // key for minting join tokens (CapJoinTokens)
	ProxyBinary     string   // path of weft-proxy (CapRunsInstances)
	DataDir         string   // a directory the adapter may keep state in
}

// ConfigureRequest configures an adapter.
type ConfigureRequest struct {
	// Source is what the adapter reads: a file path, a scheduler address.
	Source  string
	Options map[string]string
	Mesh    MeshContext
}

// Severity of a diagnostic.
type Severity int

const (
	SeverityError Severity = iota
	SeverityWarning
)

// Diagnostic is a problem an adapter reports in-band.
type Diagnostic struct {
	Severity Severity
	Summary  string
	Detail   string
	// Instance, when set, names the instance the adapter skipped; Reason
	// says why (core/model's Reason constants, or the adapter's own
	// word). The controller lists such instances in its status.
	Instance string
	// Reason is ReasonSourceFailing on the diagnostic a watch sends while
	// its scheduler cannot be read: the controller shows it as the
	// adapter's LAST ERROR until a snapshot comes without it.
	Reason string
}

// ReasonSourceFailing marks the diagnostic an adapter sends while it
// cannot read its scheduler (unreachable, credentials refused).
const ReasonSourceFailing = "source_failing"

// ConfigureResponse carries the problems found in the configuration. Any
// error-severity diagnostic means the adapter is not configured.
type ConfigureResponse struct {
	Diagnostics []Diagnostic
}

// WatchRequest starts a watch. It has no fields yet; it exists so that
// adding one never breaks the interface.
type WatchRequest struct{}

// WatchEvent carries one full snapshot and any per-record problems.
type WatchEvent struct {
	Snapshot    model.Snapshot
	Diagnostics []Diagnostic
}

// IdentityVerifier is implemented by adapters that announce
// CapVerifiesIdentity. The controller calls it when a sidecar joins with a
// scheduler credential naming this adapter, then still requires the
// adapter's snapshot to hold that instance with that service, and issues a
// certificate for that service only.
type IdentityVerifier interface {
	VerifyIdentity(ctx context.Context, req *VerifyIdentityRequest) (*VerifyIdentityResponse, error)
}

// VerifyIdentityRequest carries a sidecar's claim: its instance and the
// credential its scheduler gave it.
type VerifyIdentityRequest struct {
	InstanceID string
	Credential string
}

// VerifyIdentityResponse is what the credential proves. An error means it
// proves nothing; its message says why (expired, wrong audience, ...).
type VerifyIdentityResponse struct {
	InstanceID string
	Service    string
	Namespace  string
	// Node is set when the credential is a node proxy's
	// (docs/deployment-models.md): the node it runs on, as the adapter's
	// snapshot names it (model.Instance.Node). The instance, when the
	// request names one, is then one the adapter lets that node proxy
	// serve. A request with no InstanceID asks only who the node proxy is.
	Node string
}
