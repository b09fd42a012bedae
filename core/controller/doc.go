// Package controller is the loop at the heart of the Weft controller.
//
// Entry point: New, then Run. Run takes two inputs, both typed and flowing
// one way: full workload snapshots from adapters (already translated to
// core/model by plugins/host and the cmd wiring), and compiled policies
// (from hcl/, also via the cmd wiring; core imports neither). Every input
// only marks the state dirty; the loop then drains what else is waiting,
// merges snapshots in the registry, compiles one proxy configuration per
// instance (core/compile) and hands them to the config server
// (core/meshserver), which streams the ones that changed.
//
// The controller is also the config server's Binder (Allowed): whether
// the policy in force binds an instance's workload to its service. After
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
package controller
