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
package mesos
