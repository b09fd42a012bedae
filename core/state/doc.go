// Package state is the controllers' replicated state, on hashicorp/raft
// (v1.7.2, raft-boltdb/v2): what every controller replica must agree on.
//
// Entry point: Open, which starts one replica (Node) from `weft controller
// --raft-dir --raft-addr --state-key-file [--bootstrap-expect N] [--join
// ADDR...]` (cmd/weft/raft.go wires it).
//
// What is replicated (fsm.go): the CA state (core/ca.State: the active
// root and its key, the previous roots with their cross-signatures and
// retirement times, the join secret), sealed with AES-256-GCM under the
// operator's state key (crypto.go; the same key on every replica), so the
// raft log, its snapshots and ca-state.sealed never hold a key in clear;
// and the spent join tokens (SpentTokens, a core/ca.SpentStore): a token
// spent through any replica is refused by every other and after a restart
// of all of them. Commands are typed (one byte, then JSON); a CA change
// names the state it replaces (compare-and-set on its digest), so two
// rotations computed from one state commit once. The applied policy
// (policy.go): the source files `weft policy apply` sent, bounded in
// number and size, with who applied them and when; the last
// MaxPolicyHistory versions are kept, the newest active. Applying is a
// compare-and-set on the active version's raft index (--check-index);
// every replica compiles the same bytes (Options.OnPolicy hands them to
// the controller, which cmd/weft compiles: core reads no HCL), and keeps
// the active version in RAFT_DIR/policy-active.json, so that after a
// restart it serves it before it hears from its peers; while it replays
// the entries it had at its start it hands over nothing older. Not
// replicated yet: issued-certificate records.
//
// What is not: workload truth. Every replica runs the adapters itself,
// compiles, and serves its own sidecars, because the schedulers are the
// source of truth, an adapter's snapshot is cheap to read again, and a
// replica that lost quorum must keep compiling endpoint changes for its
// sidecars; replicating snapshots through one leader would make every
// endpoint change wait for a quorum and stop them during quorum loss.
//
// Writes go through the leader: a follower forwards the command over the
// peers' connection (rpc.go) and waits until it has applied the entry
// itself (CommitCA). With no leader (no quorum) a write fails within 5s
// with ErrNoLeader, which says what it means: new sidecars cannot join
// and the CA cannot rotate; sidecars keep serving and connected ones
// renew (renewal signs with the CA each replica holds). Status, `weft
// status`, `weft check` and the log say so.
//
// Peers (transport.go): one port per replica carries raft and the
// forwarded requests, over TLS 1.3 with each controller's own certificate;
// a peer is admitted by proving the state key (an HMAC over keying
// material exported from that TLS session), because replicas forming a
// new cluster each start with a candidate CA until the first leader's
// becomes the cluster's. Snapshots and log compaction are raft's own
// (file snapshot store, 3 kept). `weft operator raft list-peers|remove-
// peer` and `weft operator snapshot save|restore` use operator.go.
//
// Outside the log (peer.go): HandlePeer and SendPeers carry messages
// from one replica to every other over the same connections, for what
// changes every second and need not be durable: core/relay sends the
// sidecars' reports and global-limit demand that way, so that stats and
// budgets are the same from any replica.
package state
