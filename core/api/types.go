package api

import (
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/refusals"
	"github.com/weftmesh/weft/core/state"
)

// The JSON the admin API answers and takes. The CLI (`weft status`,
// `weft ca`, `weft check`, `weft policy plan`) and the tests
// (test/harness) decode these same types; field names are the API.

// StatusReport is what GET /v1/status returns.
type StatusReport struct {
	// ControllerVersion is the controller's build (core/version), Time its
	// clock when it answered: `weft check` compares sidecars with both.
	ControllerVersion string `json:"controller_version,omitempty"`
	// Raft is the replica's place in its cluster (core/state); nil for a
	// controller without --raft-dir.
	Raft            *state.Status             `json:"raft,omitempty"`
	Time            time.Time                 `json:"time,omitzero"`
	TrustDomain     string                    `json:"trust_domain"`
	Policy          string                    `json:"policy"`
	PolicyError     string                    `json:"policy_error,omitempty"`
	PolicyInForce   *PolicyInForce            `json:"policy_in_force,omitempty"` // policy_apply.go
	Adapters        []AdapterReport           `json:"adapters"`
	Instances       []InstanceReport          `json:"instances"`
	Sidecars        []meshserver.StreamStatus `json:"sidecars"`
	ConfigBuilds    int                       `json:"config_builds"`
	IntentionsCount int                       `json:"intentions"`
	// Unisolated counts the instances whose app port or outbound ports
	// are open beside their sidecar (isolation none or unknown).
	Unisolated int `json:"unisolated_instances"`
	// Roots are the CA's roots: the active one first, then the previous
	// ones still trusted after a rotation.
	Roots []RootReport `json:"roots"`
	// RefusedHandshakes counts the TLS handshakes each API refused since
	// the controller started, by reason: "sidecar_api" and "admin_api".
	RefusedHandshakes map[string]refusals.Counts `json:"refused_handshakes"`
	// ProtectionRefused counts what each API's defences refused since the
	// controller started (core/protect), by API and reason:
	// source_connections, shed, header_count, body_too_large.
	ProtectionRefused map[string]map[string]uint64 `json:"protection_refused,omitempty"`
	// Intrusions are the intrusion signals each sidecar reported last
	// (core/proxy/guard): its top sources and the sources it blocks.
	Intrusions []IntrusionReport `json:"intrusions,omitempty"`
	// IdentityBinding is the policy's mesh identity_binding: "strict" or
	// "permissive".
	IdentityBinding string `json:"identity_binding,omitempty"`
	// Skipped are the instances left out of every endpoint set (reason
	// "unbound workload": no binding of their service names their
	// workload; they get no certificate). In permissive mode they are
	// served anyway and listed here as a warning.
	Skipped []compile.Skipped `json:"skipped,omitempty"`
	// WaitingFor names the adapters whose first snapshot the controller
	// still waits for after a (re)start: no configuration is served until
	// they report (at most 30 s). WaitedOut says the wait passed without
	// them: configurations are served and may lack their endpoints.
	WaitingFor []string `json:"waiting_for_first_snapshot,omitempty"`
	WaitedOut  bool     `json:"waited_out,omitempty"`
	// Dropped are the instances left out of the mesh for a reason, or an
	// upstream port of theirs that was ignored: what an adapter skipped
	// (a Mesos task without a mesh port), the records the registry
	// refused (no service name, an unnamed port, a duplicate ID), the
	// upstream ports the policy does not declare (core/model's Reason
	// constants), at most 500 of them. DroppedCounts counts every one
	// per reason. (The controller
	// has no metrics endpoint yet; these are its drop counters.)
	Dropped       []model.Dropped `json:"dropped,omitempty"`
	DroppedCounts map[string]int  `json:"dropped_counts,omitempty"`
	// JWKS are the key sets of the policy's JWT providers as the
	// controller last read them (core/jwks): a set that cannot be read
	// keeps its last good keys; one never read refuses its tokens.
	JWKS []JWKSReport `json:"jwks,omitempty"`
}

// JWKSReport is one JWT provider key set (a jwks_url or jwks_file).
type JWKSReport struct {
	Source string `json:"source"`
	// KeyBytes is the size of the last good key set; 0: none was read
	// yet, and the providers using it refuse every token.
	KeyBytes int        `json:"key_bytes"`
	ReadAt   *time.Time `json:"read_at,omitempty"` // when it was last read and good
	Error    string     `json:"error,omitempty"`   // the last read's error
}

// RootReport is one CA root and how many connected sidecars hold a leaf
// it signed (as far as this controller issued them).
type RootReport struct {
	ca.RootInfo
	Sidecars int `json:"sidecars"`
}

// RootsReport is what GET /v1/ca/roots returns.
type RootsReport struct {
	Roots []RootReport `json:"roots"`
	// SidecarsUnknown counts connected sidecars whose leaf this controller
	// did not issue (another replica or an earlier run did).
	SidecarsUnknown int `json:"sidecars_unknown"`
	// BundlePEM is every root, as sidecars should trust them.
	BundlePEM string `json:"bundle_pem"`
}

// AdapterReport describes one supervised adapter plugin.
type AdapterReport struct {
	Name     string `json:"name"`
	Pid      int    `json:"pid"`
	Running  bool   `json:"running"`
	Restarts int    `json:"restarts"`
	// LastError is what the adapter reports while it cannot read its
	// scheduler (unreachable, credentials refused; SourceFailing set),
	// cleared when it reads it again; otherwise the plugin's last
	// failure (a crash, a refused configuration), kept after a recovery.
	// LastErrorAt is when it was first reported.
	LastError     string     `json:"last_error,omitempty"`
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`
	SourceFailing bool       `json:"source_failing,omitempty"`
}

// InstanceReport describes one instance in the registry.
type InstanceReport struct {
	Adapter string         `json:"adapter"`
	ID      string         `json:"id"`
	Service string         `json:"service"`
	Address string         `json:"address"`
	Ports   map[string]int `json:"ports"`
	// Labels are the scheduler's own coordinates of the instance
	// (model.Instance.Labels: job/group/alloc for Nomad, framework/task for
	// Mesos, namespace/pod for Kubernetes, pid for local).
	Labels map[string]string `json:"labels,omitempty"`
	// Health is the health the controller compiles with: "critical" when
	// the scheduler or the sidecar's active checks say so (HealthSource
	// says which), else the scheduler's ("passing", "warning" or ""
	// for unknown). A critical instance is in no caller's endpoints.
	Health string `json:"health"`
	// HealthSource is "scheduler" or "sidecar_check": what Health comes
	// from. HealthReason says why a sidecar check fails.
	HealthSource string `json:"health_source"`
	HealthReason string `json:"health_reason,omitempty"`
	// SchedulerHealth is the scheduler's view alone, and SidecarCheck the
	// last result the instance's sidecar reported of its active checks:
	// "passing", "failing", or "" when it reports none (no checks in
	// policy, an older sidecar, or no stream for longer than the grace).
	SchedulerHealth string `json:"scheduler_health"`
	SidecarCheck    string `json:"sidecar_check,omitempty"`
	Identity        string `json:"identity"`
	// Isolation is what the adapter says protects the app port and the
	// outbound ports: "guard", "netns", "none", or "" (unknown, as none).
	Isolation string `json:"isolation"`
	// Outbound are the sidecar's outbound listeners in its compiled
	// configuration.
	Outbound []OutboundReport `json:"outbound,omitempty"`
	// App is where the sidecar reaches the app ("ip:port") in its compiled
	// configuration: what `weft check` probes as the app port.
	App string `json:"app,omitempty"`
	// Node is the node the scheduler placed the instance on
	// (model.Instance.Node), "" when its adapter does not say.
	Node string `json:"node,omitempty"`
	// ProxyMode is the proxy mode its scheduler chose
	// (Meta[model.MetaProxyMode]): "node", "application", or "" for a
	// sidecar. The policy's proxy_mode may disagree: status lists that
	// under Dropped (proxy_mode_refused, proxy_mode_mismatch).
	ProxyMode string `json:"proxy_mode,omitempty"`
}

// OutboundReport is one outbound (upstream) listener of a sidecar, as its
// compiled configuration has it.
type OutboundReport struct {
	Upstream string `json:"upstream"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
}

// JoinTokenRequest is the body of POST /v1/join-tokens: a launcher that is
// not an adapter (a Mesos framework, a script) asks for a single-use join
// token for one instance that an adapter reports.
type JoinTokenRequest struct {
	Adapter    string `json:"adapter"`
	Instance   string `json:"instance"`
	Service    string `json:"service"`
	Namespace  string `json:"namespace"`
	TTLSeconds int    `json:"ttl_seconds"`
	// Node, instead of instance and service, asks for a node token: it
	// admits the node proxy of that node (weft-proxy --node) for each
	// instance the adapter places there, once per instance
	// (docs/deployment-models.md).
	Node string `json:"node,omitempty"`
}

// JoinTokenResponse is what POST /v1/join-tokens returns: the token, and
// how long it is good for (a Go duration, "10m0s").
type JoinTokenResponse struct {
	ExpiresIn string `json:"expires_in"`
	Token     string `json:"token"`
}

// PolicySources is what GET /v1/policy returns: the source files of the
// policy the controller holds, by name.
type PolicySources struct {
	Files map[string]string `json:"files"`
	// InForce says where they come from, and for a replicated policy its
	// index (what `weft policy apply --check-index` names).
	InForce *PolicyInForce `json:"in_force,omitempty"`
}

// IntrusionReport is one instance's intrusion signals, as its sidecar
// reported them last.
type IntrusionReport struct {
	Instance string                  `json:"instance"`
	Service  string                  `json:"service"`
	Time     time.Time               `json:"time"`
	Sources  []IntrusionSourceReport `json:"sources,omitempty"`
	Blocked  []BlockedSourceReport   `json:"blocked,omitempty"`
}

// IntrusionSourceReport is a source's signals, by kind.
type IntrusionSourceReport struct {
	Source string            `json:"source"`
	Total  uint64            `json:"total"`
	ByKind map[string]uint64 `json:"by_kind,omitempty"`
	Last   time.Time         `json:"last"`
}

// BlockedSourceReport is a source a sidecar refuses until Until.
type BlockedSourceReport struct {
	Source string    `json:"source"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}
