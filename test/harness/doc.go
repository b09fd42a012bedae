// Package harness is the shared machinery of Weft's end-to-end tests
// (test/e2e, test/nomad, test/mesos, test/kubernetes): it builds the
// binaries, starts and stops processes, and reads the controller's admin API.
//
// Entry points:
//
//   - Main, the body of a TestMain: BuildBinaries `go build`s the named
//     packages of the module (MeshBinaries: weft, weft-proxy, weft-demo-app
//     and extras) into a temporary directory, removed after the tests.
//   - FreeAddr: a free 127.0.0.1 port.
//   - Start: a started binary (Process) whose output (Out, a SyncBuffer) is
//     kept, stopped at the test's cleanup and logged when the test failed;
//     Options choose the stop signal, the grace before SIGKILL, a process
//     group of its own, extra environment.
//   - StartController: a `weft controller` (Controller, a Process with its
//     Admin, Listen and DataDir addresses), its flags from ControllerOptions
//     (WeftController: the usual ones); Restart runs it again; Remote names
//     one the test did not start. StartLocalMesh writes a policy and the
//     local adapter's workloads and starts a controller on them (LocalMesh),
//     stopped like Ctrl-C (CtrlC).
//   - Controller.Client is the admin API client every test uses: the CLI's
//     own (core/api), HTTPS verified with DataDir/ca/ca.crt (CACert),
//     the token from DataDir (or another one, to test a refusal);
//     Controller.Call sends one request with it. Controller.Status reads
//     GET /v1/status (Status, which is core/api's StatusReport with the
//     helpers below: the tests decode the API's own types, never copies
//     of them); Controller.WaitFor polls it, within a bound,
//     until a condition holds; Converged(n) is the usual condition;
//     Status.Address finds a service's instance.
package harness
