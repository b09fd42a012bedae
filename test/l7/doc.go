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
//
// One file per feature: routing_test.go (matches, 90/10 split, empty
// subset), resilience_test.go (retries, retry budget, request and per-try
// timeouts, header changes, L7 intentions), grpc_test.go (gRPC method
// routing, retries on UNAVAILABLE, a server stream), limits_test.go (rate
// limits over HTTP and gRPC, connection limits), fault_test.go,
// lb_test.go (consistent hashing), breaker_test.go (circuit breaker,
// outlier detection), outlier_test.go (success-rate ejection, the return
// on the sidecar's timer, GET /stats), mirror_test.go, websocket_test.go and
// reload_test.go (twenty route changes under steady load, no failed
// request). Statistical checks allow six standard deviations.
//
// Two tests run the real binaries instead (built by the test): the
// controller with the local adapter starts weft-proxy processes and the
// applications; startControllerMesh (harness_test.go) starts it with
// test/harness and waits until the mesh has converged. controller_test.go
// reloads policy under load;
// spelling_e2e_test.go writes every spelling of a denied request raw
// through a caller's sidecar to an application that records what reaches
// it (testdata/recorder), and checks the identity headers and the
// sidecars' logs.
//
// harness_test.go is this package's harness (the in-process mesh: start,
// apply, url, client, do); a request's status, body and headers (Do), the
// gRPC health client, waits, workloads, policy files and the controller
// come from test/harness.
package l7
