// Package policy is the typed policy model the controller compiles into
// per-instance proxy configuration. It is produced by the HCL compiler in
// hcl/ (which core never imports) and consumed by core/compile.
//
// Entry point: Policy. Policy.Decide and Policy.Winner resolve intentions
// (route.go holds the traffic-management types: subsets, routes, retries,
// timeouts, limits, faults, mirrors, L7 permissions); Diff (plan.go)
// compares two policies for `weft policy plan`: changes per service, part
// and intention, and the caller -> service flows whose decision changes.
package policy
