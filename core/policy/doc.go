// Package policy is the typed policy model the controller compiles into
// per-instance proxy configuration. It is produced by the HCL compiler in
// hcl/ (which core never imports) and consumed by core/compile.
//
// Entry point: Policy. Policy.Decide and Policy.Winner resolve intentions
// for a caller named "ns/svc" or "svc" (in its service block's namespace);
// DecideCaller and WinnerFor take the caller's namespace and service as
// the sidecar reads them from its SPIFFE ID. An intention's source names a
// service in the destination's namespace (SourceNamespace ""), in a given
// namespace, every service of a namespace (Source "*"), or every caller
// of the trust domain ("*" with SourceNamespace "*" or ""); the most
// specific source wins, then the most specific destination, then deny.
// Policy.Bound (binding.go) says whether a service's bindings name a
// scheduler workload (model.Instance.Workload), and if not returns an
// UnboundError that gives the binding block to add; Mesh.IdentityBinding
// ("" or "strict", or "permissive") says what an unbound workload may
// still do, which core/compile (endpoints) and the controller's Binder
// (certificates) apply.
//
// route.go holds the traffic-management types: subsets, routes, retries,
// timeouts, limits, faults, mirrors, L7 permissions; health.go the
// service's HealthCheck, which its own sidecars run against their app; Diff (plan.go)
// compares two policies for `weft policy plan`: changes per service, part
// and intention, and the caller -> service flows whose decision changes.
package policy
