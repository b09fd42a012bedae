// Package mesossim is a Mesos master simulator for tests and demos. No
// Mesos binary can be had here, so this package speaks the real wire
// protocol instead: the v1 operator API (POST /api/v1: GET_STATE,
// GET_AGENTS, GET_TASKS, GET_FRAMEWORKS, GET_HEALTH, and SUBSCRIBE as a
// RecordIO event stream) and the v1 scheduler API (POST
// /api/v1/scheduler: SUBSCRIBE with the Mesos-Stream-Id header, ACCEPT
// with LAUNCH and LAUNCH_GROUP, DECLINE, KILL, ACKNOWLEDGE, RECONCILE,
// REVIVE, TEARDOWN; events SUBSCRIBED, OFFERS, UPDATE, HEARTBEAT), in JSON
// and protobuf, encoded with mesos-go's own types.
//
// Entry point: Start, which runs a Cluster of one or more masters sharing
// one state (one leads; the others answer 307 with a scheme-relative
// Location, as a real master does) and agents that run launched tasks as
// local processes. Every task group gets its own loopback address, shared
// by its tasks, which see their ports in the environment. Behaviours of a
// real master that clients depend on are kept: exact Content-Type
// matching (415 and 406 otherwise), chunked streams without
// Content-Length flushed record by record (or application/recordio with
// Message-Content-Type, for clients that ask for it), optional HTTP Basic
// auth, 503 while a newly elected leader recovers, streams cut on
// failover, status updates sent again until acknowledged, explicit
// reconciliation, TASK_UNREACHABLE for a partitioned agent's tasks.
//
// Tests drive failures through Cluster: SetLeader (failover), CrashTask
// (a process dies), PartitionAgent and HealAgent, AddFramework and
// SetTaskState (tasks recorded without processes, for operator API
// tests).
//
// Files: cluster.go (the Cluster and its controls), http.go (what every
// call meets first, and the operator API), scheduler.go (the scheduler
// API and offers), agent.go (running task groups, status updates),
// state.go (records and GET_STATE).
//
// Place in the data flow: it stands where a Mesos master does, in front of
// adapters/mesos (operator API) and examples/mesos (scheduler API).
// cmd/mesossim runs one from the command line.
package mesossim
