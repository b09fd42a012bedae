// Package balance picks the endpoint of an upstream for each request or
// connection: round robin; least request as the power of two random
// choices over requests (or connections) in flight; random; ring hash (128
// points per endpoint) and maglev (a 65537-slot table) on a key (HashKey:
// a header, a cookie or the calling instance), keyed by instance ID so a
// key stays put across configuration versions.
//
// Outlier detection lives here too: a Detector per upstream, its state on
// each Endpoint. Detector.Observe counts each try's outcome (a failure is
// a 5xx or a failed connection) and ejects an endpoint when a consecutive
// count (5xx, gateway errors, local failures) reaches its threshold. The
// Detector's own goroutine, running only while the configuration asks
// for outlier detection, wakes at the end of every interval and at the
// end of every ejection: the sweep ejects by success rate (among the
// endpoints with at least request_volume tries in the interval, when at
// least minimum_hosts have them, those whose rate is below mean -
// stdev_factor x the population standard deviation, lowest first), and an
// ejected endpoint returns to the set when its ejection time ends, with
// traffic or without. Every ejection lasts base time x the endpoint's
// ejections, whose count goes down by one per whole interval spent in the
// set; at most max_ejected_percent of the endpoints are out at once, and
// Detector.Skip, the set a balancer skips, is empty when every endpoint
// is ejected. A Clock (DetectorOptions) makes all of it testable without
// sleeping. Ejection only ever changes which endpoint is picked, so it
// belongs with the picking.
//
// Entry points: Build (endpoints from the configuration, keeping in-flight
// counts and ejections across versions), New (the Balancer an LB names),
// Endpoint.Acquire, HashKey, NewDetector, Detector.Update (a new
// configuration), Observe, Skip, Stats (for the admin /stats) and Close.
package balance
