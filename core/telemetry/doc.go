// Package telemetry is the controller's side of the golden signals
// (issue 14): the Collector adds up the reports the sidecars send on the
// Report RPC (core/meshserver, report.go, which checks that a sidecar
// reports only for an instance of the service its certificate names and
// hands the report over through its Stats interface), and answers GET
// /v1/stats (core/api, with api.StatsReport) and `weft stat`.
//
// What a report holds (core/proxy, stats.go and report.go): per peer,
// the requests, successes, denials, a latency histogram with the fixed
// bounds meshapi.LatencyBoundsMs, connections and bytes since the
// sidecar's last report; inbound per calling service (as the caller's
// certificate names it), outbound per upstream, route and subset. A
// report the sidecar could not send is merged into its next one, so a
// slow controller loses no count, only when it happened.
//
// Aggregation: reports go into the step (Options.Step, 10 s) they
// arrive in; the collector keeps Options.Steps of them (60: 10
// minutes) in a ring and adds up the steps a query's window covers.
// Per step it keeps, per service, per edge (caller -> callee, as the
// callee's sidecars saw it and as the caller's did), per route and
// subset (the caller's view) and per instance, one set of counters
// (about 200 bytes with the 18 buckets), made only for what had traffic
// in that step. An edge's figures are the callee's when its sidecars
// reported it (the caller cannot lie about who it is), else the
// caller's (a callee outside the mesh). Percentiles are interpolated
// within the bucket (Quantile), so they are exact to within one bucket.
//
// Memory, 1,000 sidecars each reporting traffic with 5 callers and 5
// upstreams every step: about 1,000 instance counters and a few hundred
// service, edge and route counters a step, so roughly 300 KB a step and
// 20 MB for the 10 minutes (BenchmarkCollector and the control-plane
// benchmark measure it). MaxKeys bounds each map of a step whatever the
// reports say.
//
// Metrics (metrics.go) is the controller's own Prometheus registry for
// GET /metrics on the admin API: builds and compile time (a
// core/controller Listener), connected streams and their ACK/NACK state,
// adapters, instances by health, reports, CA root expiry, and the
// process and Go collectors.
package telemetry
