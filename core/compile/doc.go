// Package compile turns the typed policy and the registry's merged view of
// instances into one proxy configuration per instance.
//
// Entry point: Compile. It is a pure function: same policy and instances in,
// same configurations out, so the config server can tell which instances'
// configurations changed by comparing them.
//
// Choices where the policy says nothing:
//   - an instance whose service has no service block gets an inbound
//     listener speaking TCP and no upstreams;
//   - an upstream's protocol is its destination service's protocol;
//   - an instance port named "upstream:<service>" overrides the policy's
//     local_port for that upstream of that instance (host networking, where
//     instances share an address);
//   - instances whose health is critical are left out of upstream endpoints;
//   - an upstream gets its destination service's routes, timeouts,
//     circuit breaker and outlier detection; every endpoint lists the
//     subsets (of the destination's subset blocks) it belongs to, by its
//     instance metadata and tags; a route's fault is compiled only into the
//     callers it names; a mirror carries the mirror service's endpoints
//     and identity;
//   - rate and connection limits go into the destination's inbound;
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
