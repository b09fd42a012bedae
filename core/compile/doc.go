// Package compile turns the typed policy and the registry's merged view of
// instances into one proxy configuration per instance.
//
// Entry points: Compile, and Compiler for the controller. Compile is a
// pure function: same policy and instances in, same configurations out, so
// the config server can tell which instances' configurations changed by
// comparing them.
//
// Incremental compile (incremental.go): a Compiler keeps the last
// configuration of every instance, the servable instances of each
// (namespace, service) group with its endpoint list, and, from the policy,
// which calling services read each group (as an upstream, or as the mirror
// of an upstream's route). Compiler.Update finds the entries that changed
// by their registry revision (registry.Entry.Rev; entries without one are
// compared whole), walking the last and the new entries side by side, and
// compiles again only the changed instances and every instance of a
// service that reads a group a changed instance left or joined. A policy
// change compiles everything again: any part of the policy may touch any
// configuration, and working out which would cost more than it saves. It
// returns a Delta (the configurations compiled again, the instances gone)
// for core/meshserver.Server.Apply, and keeps Unbound up to date as it
// goes. A test drives a Compiler through seeded random sequences of
// registry and policy changes and wants, at every step, the same encoded
// bytes as Compile; both share instanceConfig, which compiles one instance.
// In the control-plane benchmark's mesh (10,000 instances, 10 upstream
// services each) an endpoint change compiles 101 configurations, not
// 10,000 (BenchmarkCompilerUpdate).
//
// Choices where the policy says nothing:
//   - an instance whose service has no service block gets an inbound
//     listener speaking TCP and no upstreams;
//   - an upstream's protocol is its destination service's protocol;
//   - an instance port named "upstream:<service>" overrides the policy's
//     local_port for that upstream of that instance (host networking, where
//     instances share an address); one for a service the policy does not
//     declare as an upstream of the instance's service is ignored, and
//     UndeclaredUpstreams/UndeclaredDrops (undeclared.go) name it for the
//     controller's status and `weft policy plan`;
//   - instances whose health is critical are left out of upstream endpoints;
//   - an upstream gets its destination service's routes, timeouts,
//     circuit breaker and outlier detection; every endpoint lists the
//     subsets (of the destination's subset blocks) it belongs to, by its
//     instance metadata and tags; a route's fault is compiled only into the
//     callers it names; a mirror carries the mirror service's endpoints
//     and identity;
//   - rate and connection limits go into the destination's inbound;
//   - a service's health check (health.go) goes into the configuration
//     of each of its own instances (ProxyConfig.health_check), never into
//     its callers';
//   - intentions are resolved here into per-destination rules that the
//     sidecar evaluates with simple precedence (a named service over a
//     namespace's "*" over "*", deny over allow among equals), giving the
//     same answer as policy.DecideCaller; every rule names its source
//     namespace (a source written without one is the destination's), and
//     a rule carries the L7 permissions of the intention that wins;
//   - identity binding (binding.go): in strict mode (the default) an
//     instance whose workload no binding of its service names is left
//     out of every endpoint set; Unbound lists such instances (reason
//     "unbound workload") for the controller's status and log, in
//     permissive mode too. The instance still gets its own configuration:
//     without a certificate (the config server refuses it one) it cannot
//     fetch it.
package compile
