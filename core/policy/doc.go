// Package policy is the typed policy model the controller compiles into
// per-instance proxy configuration. It is produced by the HCL compiler in
// hcl/ (which core never imports) and consumed by core/compile.
//
// Entry point: Policy.
package policy
