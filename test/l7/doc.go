// Package l7 holds the end-to-end tests of Weft's traffic management: each
// test writes HCL policy, compiles it with the real policy compiler
// (hcl/, core/compile) against instances on loopback, and drives real
// sidecars (core/proxy) with real mTLS between them, in front of real
// HTTP/1.1, HTTP/2 and gRPC applications, with real clients.
//
// Entry point: start (harness_test.go) builds such a mesh from a policy
// and a list of instances; reload applies a new policy to every sidecar
// the way the controller does (compile, then a new config version per
// instance).
package l7
