// Package mesos is the end-to-end test of Weft on Mesos: the master
// simulator (test/mesossim, in the test process, with two masters), the
// example framework (examples/mesos/framework), the controller with the
// Mesos adapter, and weft-proxy sidecars, all real processes on loopback.
//
// Entry point: TestMesosMesh. The masters require HTTP Basic auth, which
// the adapter (through --adapter-option) and the framework are given. A frontend and two api instances run as app
// + sidecar task groups launched by the framework with join tokens from
// the controller's admin API; the frontend calls the api over mTLS; a
// crashed api task leaves every sidecar's configuration within two
// seconds and the framework replaces it; a master failover is followed by
// both the adapter and the framework while calls keep working; stopping
// the framework stops every task. The controller, processes and the demo
// app's answer come from test/harness.
//
// TestMesosNodeProxy (nodeproxy_test.go) runs the framework with
// --node-proxy on two agents: a node proxy per agent serves the node-mode
// tasks, with each instance's own identity and intentions, and the
// credentials read from the processes are refused for anything but their
// own agent's node-mode tasks, and once the node-proxy task is killed.
package mesos
