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
// callee's sidecars saw it and as the caller's did), per named route and
// subset (the caller's view; route "" is the edge's less them) and per
// instance, one set of 32-bit counters (104 bytes with the 18 buckets,
// about 150 with the map's share), made only for what had traffic in
// that step. An edge's figures are the callee's when its sidecars
// reported it (the caller cannot lie about who it is), else the
// caller's (a callee outside the mesh). Percentiles are interpolated
// within the bucket (Quantile), so they are exact to within one bucket.
//
// Memory grows with the subjects that have traffic, not with requests:
// BenchmarkCollector fills the 10-minute window with 1,000 sidecars of
// 1,000 services, each with 5 callers and 10 upstreams of its own
// (10,000 edges, about 27,000 subjects a step), and measures 235 MiB
// and a 1.4-4 s GET /v1/stats over the whole window on the shared
// 2-core machine; a mesh of 1,000 sidecars in 100 services with 500
// edges keeps about a twentieth of that. Recording one report of 15
// cells takes 8-30 µs (the control-plane benchmark: 177 µs of the
// controller's CPU per report, gRPC and TLS included, so 1,000 sidecars
// every 10 s take under 2% of a core). MaxKeys bounds each map of a
// step whatever the reports say.
//
// Metrics (metrics.go) is the controller's own Prometheus registry for
// GET /metrics on the admin API: builds and compile time (a
// core/controller Listener), connected streams and their ACK/NACK state,
// adapters, instances by health, reports, CA root expiry, and the
// process and Go collectors.
package telemetry
