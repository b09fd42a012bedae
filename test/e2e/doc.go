// Package e2e holds Weft's end-to-end tests: real binaries (weft, weft-proxy,
// the demo and gRPC test apps) started as real processes on loopback, with
// real TLS, real HTTP and gRPC clients. TestMain builds the binaries once.
//
// Entry point: TestLocalMesh, which walks one mesh through the spine's
// promises: calls over mTLS with the caller's identity, default deny, a
// foreign CA refused, a bad policy rejected while the last good one keeps
// working, a killed adapter plugin restarted, a killed controller not
// stopping traffic, and a clean shutdown stopping every process.
//
// TestTraceFrontendAPIStore (trace_test.go) is the tracing proof: a real
// Jaeger 1.75.0 (test/harness/jaeger.go) receives the spans of
// client -> frontend -> api -> store over OTLP, read back through its query
// API; W3C and B3 parents continue; sampling 0 and tracing off apply
// without restarting a sidecar.
//
// harness_test.go holds what only this package needs (startLocalMesh with
// isolation off, a sidecar API client, the local adapter's pids); the
// controller, processes, workloads, HTTP and gRPC calls, waits and weft
// check come from test/harness.
package e2e
