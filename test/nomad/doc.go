// Package nomad holds Weft's end-to-end tests against a real Nomad 1.6.1
// agent (see nomadtest): Nomad jobs with a weft-proxy sidecar task, host
// networking and Nomad-allocated ports, a controller running the nomad
// adapter, traffic over mTLS between the sidecars, scaling, killed
// allocations, a controller restart, and sidecars that present a workload
// identity that is not theirs. TestNomadKillsLoseNoGET (kill_test.go)
// SIGKILLs an api's app task, then its sidecar task, then stops an
// allocation, under a steady stream of GETs and POSTs: no GET fails, no
// POST fails but one in flight at a kill, and the instance leaves the
// caller's endpoints within 2 s. health_test.go takes an api out by a
// failing Nomad service check and by a failing health_check its own
// sidecar runs. TestBridgeIsolation runs jobs that
// `weft nomad render` wrote with bridge networking (the agent runs as root
// with the CNI plugins of /usr/lib/cni; `make nomad` installs them) and
// checks, by dialling from the host and from inside the allocations'
// network namespaces (which the test's own agent created), that only the
// sidecar's mesh port can be reached from outside an allocation; then it
// runs `weft check` against them (every probe passes) and beside a job
// rendered with network_mode = "host" (check fails, naming that job's app
// and outbound ports, and status shows its isolation none).
// TestNomadRaftFailoverUnderTraffic (ha_test.go) runs three controller
// replicas (raft) with the arguments of
// examples/nomad/controller-ha.nomad.hcl, each with its own nomad adapter
// on one agent, SIGKILLs the leader under traffic between sidecar tasks
// given all three replicas, applies a policy and rotates the CA through a
// survivor, and restarts the killed replica: no call fails.
// TestNomadRaftQuorumLossUnderTraffic (ha_quorum_test.go), on the same
// setup (haMesh: steady traffic from each frontend's sidecar every 20 ms),
// SIGKILLs the leader and then a follower: the last replica says it cannot
// issue (status, `weft status`, log, `weft check`) and refuses a join
// token, while a Nomad allocation placed meanwhile joins it with its
// workload identity (no raft write); restarting one replica brings quorum
// back, the other all three into one peer list; then all three are
// SIGKILLed and restarted: sidecars reconnect, a spent join token stays
// spent, a workload identity joins again. No call fails.
//
// Entry point: go test ./test/nomad (make test runs it). TestMain builds
// weft, weft-proxy and the demo app; nomadtest builds Nomad when its cached
// binary is missing.
//
// harness_test.go is this package's harness: startMesh (a controller with
// the nomad adapter on a nomadtest agent, its policy and CA root), the
// job files of the tests (meshJob), converged, call and endpoints, and
// waitDeployment; what is not about Nomad (processes, waits, the admin
// API, weft check, the demo app's answer, a sidecar's /config) comes from
// test/harness.
package nomad
