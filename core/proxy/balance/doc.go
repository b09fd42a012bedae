// Package balance picks the endpoint of an upstream for each request or
// connection: round robin; least request as the power of two random
// choices over requests (or connections) in flight; random; ring hash (128
// points per endpoint) and maglev (a 65537-slot table) on a key (HashKey:
// a header, a cookie or the calling instance), keyed by instance ID so a
// key stays put across configuration versions.
//
// Outlier detection lives here too, on the endpoint: Observe counts each
// try's outcome (consecutive 5xx, gateway errors, local failures) and
// ejects an endpoint for base time x ejections, at most
// max_ejected_percent at once; EjectedSkip is the set a balancer then
// skips (none when every endpoint is ejected). Ejection only ever changes
// which endpoint is picked, so it belongs with the picking.
//
// Entry points: Build (endpoints from the configuration, keeping in-flight
// counts and ejections across versions), New (the Balancer an LB names),
// Endpoint.Acquire, HashKey, Observe, EjectedSkip.
package balance
