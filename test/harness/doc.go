// Package harness is THE end-to-end harness of Weft's tests: every test
// package that runs real processes (test/e2e, test/l7, test/nomad,
// test/mesos, test/kubernetes) and the scheduler harnesses beside them
// (test/nomad/nomadtest, test/kubernetes/kubetest) take the common parts
// from here. A helper two of them need lives here, once; what only one
// scheduler needs stays in its own harness (a test package's
// harness_test.go, nomadtest, kubetest, test/mesossim).
//
// Entry points, by file:
//
//   - build.go: Main, the body of a TestMain: BuildBinaries `go build`s the
//     named packages of the module (MeshBinaries: weft, weft-proxy,
//     weft-demo-app and extras) into a temporary directory, removed after
//     the tests.
//   - process.go: Start, a started binary (Process) whose output (Out, a
//     SyncBuffer: THE synchronised log buffer) is kept, stopped at the
//     test's cleanup and logged when the test failed; Launch, the same
//     outside one test (a process a package's tests share, such as
//     nomadtest's agent). Options choose the stop signal, the grace before
//     SIGKILL, a process group of its own (killed with the test binary
//     unless NoDeathSignal), extra environment, how much of the log a
//     failure shows. Tail and FirstLine read a log.
//   - ports.go: FreeAddr (in process.go), FreePort and FreePorts: loopback
//     ports free a moment ago, never in the span the scheduler harnesses
//     give their tasks (SchedulerPortsLo to SchedulerPortsHi).
//   - wait.go: Poll (f until nil, within a bound, at an interval) and
//     Eventually (the same under a test, failing it with what it waited
//     for): every wait of the tests on a readiness signal.
//   - controller.go: StartController, a `weft controller` (Controller, a
//     Process with its Admin, Listen and DataDir addresses), its flags from
//     ControllerOptions (WeftController: the usual ones); Restart runs it
//     again; Remote names one the test did not start. StartLocalMesh writes
//     a policy and the local adapter's workloads and starts a controller
//     on them (LocalMesh), stopped like Ctrl-C (CtrlC). Controller.Client
//     is the admin API client every test uses (the CLI's own, core/api), Call sends
//     one request, Status reads GET /v1/status, WaitFor polls it until a
//     condition holds (Converged(n) is the usual one). Status is core/api's
//     StatusReport with a few helpers (Acked, Address): the tests decode
//     the API's own types, never copies of them.
//   - replicas.go: Replicas, the controller replicas of one raft cluster
//     a test kills (SIGKILL) and restarts, and which of them run (Alive);
//     Sidecars waits until each named sidecar has ACKed its configuration
//     on a live replica and says which; Leader waits until every live
//     replica names the same live leader; EachAlive reads each live
//     replica's status; Status.AllAcked names a sidecar that has not
//     ACKed. The HA proofs on the local adapter (test/e2e haCluster) and
//     on Nomad (test/nomad nomadHA) share it.
//   - ca.go: Controller.WaitCACert waits for the controller's CA bundle
//     (the sidecars' --trust-bundle); RootPool reads it as a pool.
//   - cli.go: Controller.RunWeft runs the weft CLI against the controller
//     (without the test's WEFT_ variables); Controller.Check and WaitCheck
//     run `weft check --json`, more flags after it (CheckReport, Rows);
//     WithoutWeftEnv.
//   - files.go: WriteFile, ReplaceFile (atomic, for a policy a controller
//     polls), WritePolicy (dir/policy/mesh.hcl, for --policy-dir) and
//     Workload (a service of the local adapter's workloads file).
//   - http.go: Do and Get (status and body of one request, any status an
//     answer), GetJSON (a 200 answer decoded); CallThrough and DemoAnswer
//     (the demo app calling an upstream through its sidecar, and the
//     identity the upstream's sidecar verified); ReadSidecarConfig,
//     SidecarEndpoints (a sidecar's applied configuration from its admin
//     port).
//   - grpc.go: HealthClient, a gRPC health client of a sidecar's outbound
//     listener.
//   - jaeger.go: StartJaeger, a Jaeger 1.75.0 all-in-one (memory storage,
//     OTLP gRPC and HTTP receivers, query API, all on free loopback ports;
//     JaegerBinary builds it from test/tools/jaeger into
//     ~/.cache/weft/jaeger-1.75.0 when missing); Trace and WaitTrace read a
//     trace back through GET /api/traces/{id} (JaegerTrace, JaegerSpan).
//   - tlscert.go: NewServerCert, a TLS server certificate for DNS names
//     from a CA made for the test, as PEM files (a gateway listener's
//     cert_file and key_file, a TLS app's), the pool that trusts it and
//     its CA as a PEM file (curl --cacert).
//   - tlspeer.go: PresentedChain, the certificate chain a TLS server (a
//     sidecar's mesh port) presents, and ReadCertPEM, a root from a PEM
//     file: a renewal's proof that a sidecar serves a leaf of a new root.
//   - serve.go: Serve, an accept loop for a test's own TCP servers (an
//     echo app, a forwarder).
//
// Scheduler harnesses beside it: test/nomad/nomadtest (a Nomad 1.6.1 dev
// agent), test/kubernetes/kubetest (etcd and kube-apiserver, the kubelet's
// and EndpointSlice controller's part, the injector's webhook),
// test/mesossim (a Mesos master simulator; it imports no test code, as
// cmd/mesossim runs it). Each test package's harness_test.go holds what
// only that layer needs.
package harness
