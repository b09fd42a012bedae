// Package controller is the runtime of the Weft controller: the loop at
// its heart and the policy watcher that feeds it. cmd/weft parses flags
// and wires; it holds no runtime of its own.
//
// Entry point: New, then Run(ctx, snapshots, policies, listeners...). Run
// takes two inputs, both typed and flowing one way: full workload
// snapshots from adapters (already translated to core/model by
// plugins/host and the cmd wiring), and compiled policies (from the
// PolicyWatcher). Every input only marks the state dirty; the loop then
// drains what else is waiting, merges snapshots in the registry (which
// drops unchanged ones), compiles one proxy configuration per instance
// (core/compile) and publishes the Build (the policy and every
// configuration) to each Listener, in order. The config server is the
// first listener (ConfigServer wraps core/meshserver, which streams the
// configurations that changed); others follow it: an Observer
// (observer.go) sees each Build's compile time (Build.Took) and size,
// which the controller's /metrics count (core/telemetry).
// Listeners are given to Run, so nothing is set after New and nothing is
// built in a cycle.
//
// Identity: the controller is the config server's Workloads (TrustDomain,
// Lookup, Instance: the trust domain in force and the instances its
// registry holds, for Join and Renew) and its Binder (Allowed): whether
// the policy in force binds an instance's workload to its service.
// meshserver gets both at construction and never reads the registry
// itself. Static is Workloads without a loop, for benchmarks. After
// each compilation it records the unbound instances (compile.Unbound) for
// status (Unbound) and logs each new one once: an error in strict mode, a
// loud warning in permissive mode.
//
// Nothing is compiled before the first policy arrives, so sidecars never see
// a configuration built without policy; and, after a (re)start, nothing is
// compiled until every configured adapter (Options.Adapters) has sent its
// first snapshot, so no sidecar gets a configuration that lacks another
// adapter's endpoints only because that adapter was slower to start. The
// wait is bounded (Options.FirstSnapshotWait, 30 s by default); Waiting says
// which adapters it waits for, or went on without, for status and the log.
// Each instance whose app or outbound ports are open beside its sidecar
// (isolation none or unknown) is logged once (isolation.go).
//
// Sidecar health (health.go): the controller is the config server's
// Health. An instance's sidecar that checks its own app (active checks
// from policy) reports the result on its config stream; while it reports
// failing, the instance is compiled as critical, so it leaves every
// caller's endpoint set, whatever its scheduler says. An instance is thus
// critical if its scheduler or its sidecar's checks say so; a passing
// check never overrules a scheduler that says critical. The overlay is
// applied to the registry's entries before each compilation, and an entry
// it changes carries revision 0, so the incremental compiler compares it
// whole and sees the change (a changed health is a changed record). A
// report that changes an instance between failing and passing wakes Run,
// which compiles again; a new reason for the same state compiles nothing.
//
// How long a report lasts, as a Consul or Linkerd user would expect from a
// check's last result: until the sidecar reports again; or until the
// instance leaves the registry (an instance that comes back under the same
// ID starts from its scheduler's health); or, once the sidecar has no
// config stream (it stopped, or lost this controller), for
// Options.SidecarHealthGrace (1 minute by default), after which the
// scheduler's health alone counts again. A sidecar that reconnects within
// that time sends its current result with its subscription
// (core/proxy/control), so a reconnect does not flap the endpoint. A
// restarted controller starts with no reports and learns each one as its
// sidecar reconnects (within the sidecar's reconnect backoff, at most 10 s
// by default); until then a failing instance can be back in its callers'
// endpoints, and its sidecar answers them with the retryable signal that
// sends the caller to another endpoint. Sidecars that never report (older
// ones, or no checks in policy) leave the scheduler's health in force.
// SidecarHealth is what status shows (core/api InstanceReport:
// health_source "scheduler" or "sidecar_check", health_reason).
//
// Nothing is dropped without a word (dropped.go): Dropped lists every
// instance left out for a reason, with its adapter and reason (core/model's
// Reason constants), gathered in one place from three sources: what an
// adapter's snapshot says it skipped (model.Snapshot.Dropped, which
// plugins/host fills from the diagnostics that name an instance: a Mesos
// task without a mesh port), the records the registry refuses
// (registry.Problem: no service name, an unnamed port, a duplicate ID), and
// the upstream ports the policy in force does not declare
// (compile.UndeclaredDrops and compile.ProxyModeDrops, kept by the Compiler, after each compilation; each new one is
// logged once). A snapshot replaces its adapter's drops. The admin API
// lists them and counts them per reason; the controller has no metrics
// endpoint yet, so status is where the counts are.
//
// Policy (policywatch.go): NewPolicyWatcher, then PolicyWatcher.Run, polls
// the policy directory's *.hcl files by hash and, on a change, calls the
// PolicyLoader that cmd/weft supplies (core does not read HCL). A policy
// with errors never replaces the good one: nothing is sent, its sources
// stay, and Error says why until a good change is taken. Sources and
// Error are what the admin API (core/api) reports.
package controller
