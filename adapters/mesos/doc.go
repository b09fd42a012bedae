// Package mesos is Weft's Mesos adapter: it tells the controller where the
// instances of every meshed service run on a Mesos cluster, whatever
// framework launched them (Marathon, Aurora, Metronome, your own).
//
// Entry point: New, which returns an Adapter (plugins.Adapter). The
// controller runs it as `weft adapter mesos` for --adapter
// mesos=http://master1:5050,http://master2:5050; tests use it in memory
// against the simulator in test/mesossim.
//
// Data flow: the master's v1 operator API (POST /api/v1) -> client.go
// (HTTP, leader redirects, auth, RecordIO framing from the recordio
// subpackage, mesos-go's types and codecs) -> state.go
// (GET_STATE, then SUBSCRIBE events applied to a cache of tasks, agents
// and frameworks) -> translate.go (the pure function from that cache to
// model instances, Translate(state) (snapshot, diagnostics), which most
// tests hit) -> adapter.go (Watch: a session folds events into the cache
// and signals an sdk.Loop, which translates a copy, drops unchanged
// snapshots and sends; sessions reconnect with core/backoff).
//
// # Which tasks become instances
//
// A task in state TASK_RUNNING whose service is named, by the label
// weft.service or else by its DiscoveryInfo name, and which has a port
// named "mesh" (the sidecar's mTLS port), by a DiscoveryInfo port or a
// weft.port.mesh label. Other tasks are not meshed and are skipped
// silently; a task that asks for the mesh (a weft.* label) but lacks
// something is skipped with a warning that says what to add.
//
//   - ID: the task ID.
//   - Service: label weft.service, else DiscoveryInfo name.
//   - Namespace: label weft.namespace (default "default").
//   - Ports: every named DiscoveryInfo port, then weft.port.<name> labels.
//   - Address: its agent's hostname (an IP) when its ports are the
//     agent's (Marathon's port label network-scope=host: host networking,
//     or a bridge's mapped host ports); else the IP in its latest status's
//     container status (network_infos[].ip_addresses[]); else its agent's
//     hostname if it is an IP address.
//   - Meta: the task's labels except weft.*.
//   - Health: see Health below.
//   - Labels: mesos.framework_id, mesos.framework, mesos.task_id,
//     mesos.agent_id, mesos.executor_id.
//   - Isolation: none. A task group shares its agent's network unless the
//     framework gives it a CNI network, and the adapter cannot tell from
//     the operator API that the app binds only that namespace's loopback:
//     the app's port and the sidecar's outbound ports (on 127.0.0.1, see
//     core/compile) are reachable by other processes on the agent.
//
// # Node proxies (nodeproxy.go)
//
// A task labelled weft.proxy=node is a node proxy, not an instance. A task
// labelled weft.proxy_mode=node chooses to be served by its agent's node
// proxy (Meta weft_proxy_mode=node). The adapter announces
// CapVerifiesIdentity: VerifyIdentity accepts a node-proxy token (minted
// by the controller's admin API for node "mesos-node-proxy/FRAMEWORK/
// AGENT/TASK", NodeProxyTokenNode) while the master shows that task
// running on that agent with the label, and answers the agent as the node;
// for an instance, only a node-mode task on the same agent. Sidecars keep
// joining with join tokens. Threat model: docs/deployment-models.md.
//
// # Health
//
// Only TASK_RUNNING tasks are instances (a staging or starting task is
// not one yet; a killed, failed, finished, lost or unreachable one no
// longer is, and leaves every caller's endpoints). A running task is
//
//   - passing or critical as its most recent status that carries a health
//     check result says: healthy=true is passing, healthy=false critical.
//     A later status without a result (a check update, a reconciliation)
//     does not erase it;
//   - critical while it declares a health_check and no status has carried
//     a result yet: Mesos does not call it healthy, so it gets no traffic
//     until it does (Marathon's HTTP and TCP health checks run in Marathon
//     and never reach Mesos's statuses; its MESOS_HTTP, MESOS_TCP and
//     COMMAND ones are Mesos health_checks, which do);
//   - unknown without a health_check and without a result: routed to, as
//     Mesos says nothing against it. Never warning.
//
// # Configuration
//
// Source: the masters' URLs, comma-separated (http://host:5050; a bare
// host:port means http). The adapter finds the leader, following a
// non-leader's 307. Options: user and password (or password_file) for
// HTTP Basic auth; encoding = json (default) or protobuf.
//
// # Failures
//
// A dropped stream, a heartbeat missed for three intervals, a 503 from a
// recovering master or a leader change: the adapter reconnects with
// backoff, resyncs from GET_STATE and the SUBSCRIBED state, and sends a
// new snapshot only if it differs; the last one stays in force meanwhile,
// sent with a "Mesos master lost" warning marked as the source failing, so
// `weft status` shows the outage as the adapter's LAST ERROR until the
// master's state is read again.
// Refused credentials end Watch with an error that says so (the
// controller retries it with backoff).
package mesos
