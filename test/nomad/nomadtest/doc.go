// Package nomadtest runs a real Nomad 1.6.1 agent for tests: `nomad agent
// -dev` on loopback, in a temporary directory, with the raw_exec driver
// and ACLs enabled, bootstrapped with a management token, and the CNI
// plugins of /usr/lib/cni for bridge networking (BridgeReady says what
// is missing for it: root, the plugins, iptables, the bridge module).
//
// Entry point: Start, which returns a running *Agent and stops it at test
// cleanup (jobs are stopped first, so no task outlives the test). Binary
// finds the nomad binary: $WEFT_NOMAD_BIN, else the cached build in
// $HOME/.cache/weft/nomad-1.6.1/nomad, built from test/tools/nomad when
// missing (`make nomad` does the same ahead of time).
//
// Nomad 1.6.1 is the last MPL-2.0 release; later releases are under a
// licence Weft must not use, so the harness never builds or runs another.
//
// Each agent gives its tasks ports of a slice of 500 of its own (an flock
// in the system's temporary directory) of the span test/harness keeps out
// of FreePorts (harness.SchedulerPortsLo to SchedulerPortsHi): Nomad hands
// out dynamic ports without looking at what the host holds, so neither a
// test's own listener nor another agent running at once can hold a port
// an allocation is given.
//
// The agent's log is a harness.SyncBuffer; ports, waits (Poll, kept for
// the adapter tests, is harness.Poll) and log tails come from test/harness.
//
// Where it sits: adapters/nomad's conformance and identity tests, and the
// end-to-end tests in test/nomad, run against it.
package nomadtest
