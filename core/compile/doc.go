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
//   - intentions are resolved here into per-destination rules that the
//     sidecar evaluates with simple precedence (exact source over "*", deny
//     over allow among equals), giving the same answer as policy.Decide.
package compile
