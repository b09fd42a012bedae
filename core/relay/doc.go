// Package relay makes what sidecars report to one controller replica
// known to every replica (issue 17), so that GET /v1/stats, `weft stat`,
// the intrusion reports and the global rate limits' shares give the same
// answer from any replica, whichever replica each sidecar talks to.
//
// Entry point: New, with the replica's telemetry.Collector, its
// budget.Pool (whose Options.Granted is Relay.Granted) and a Sender (the
// core/state Node: SendPeers over the replicas' authenticated
// connections, outside the raft log). The Relay stands in for the
// Collector as core/meshserver's Stats: Record records a sidecar's report
// here and queues it; Granted queues each demand report the Pool granted.
// Run sends the queue to every other replica once per Options.Every (1 s),
// in messages of at most state.MaxPeerMessage bytes; Receive (the
// handler of those messages on the other side) records the reports in
// that replica's Collector, at the time they were first received, and
// hands the demand to its Pool's Observe. Nothing received is passed on
// again, so each report is counted once on each replica.
//
// Cost (BenchmarkRelaySecond, the shared 2-core machine): one second of
// a 1,000-sidecar mesh reporting every 10 s, 100 reports of 15 cells, is
// one message of about 110 KB to each peer, and 5-9 ms of CPU to record,
// encode and take in at two peers (53-92 µs a report, the local Record
// included).
//
// What it does not do: a replica that was down (or unreachable) misses
// what was sent meanwhile, and a restarted one starts empty, so their
// windows agree again once the missed steps have left the window (10
// minutes) and the budgets' after three report intervals; the queue holds
// at most MaxQueued reports between two sends (more are dropped and
// counted); a replica that answers slowly delays the next send (each
// message waits for every peer, within the peers' request timeout).
//
// Tap (tap.go): `weft tap` through any replica shows the requests of every
// sidecar of the service, though each sidecar holds its tap stream with
// one replica. Entry point: NewTaps, the admin API's Tapper. StartTap
// opens the tap with this replica's sidecars (core/meshserver) and sends
// an "open" message to every peer (TapKind, over the same authenticated
// peer connections as the reports; the admin token was checked by the
// replica the CLI talks to, the origin). Each peer opens a leg: a session
// of its own with its own sidecars, whose events it sends back to the
// origin alone (state's SendPeer) every 200 ms, in messages of at most
// MaxMessage bytes, with the count of what it dropped. A leg never queues:
// while a send waits, its session's buffer fills and drops (counted), and
// events beyond one message are dropped (counted); the origin puts them
// into the CLI's session as its own sidecars' (dropped and counted when
// the CLI reads slowly). Closing the session at the origin (the CLI went
// away, the duration passed) sends "close" to every peer; a leg that
// missed it ends at its next message (it sends at least once a second),
// which the origin answers with "no such tap open here", or after three
// failed sends to an origin it cannot reach. GET /v1/tap/sessions lists
// what is open on a replica.
//
// Cost of a tap leg (BenchmarkTapMessage, the shared 2-core machine): a
// message of 256 events is about 225 bytes an event, and 5.6-12.5 µs of
// CPU an event to encode at the leg and take in at the origin.
package relay
