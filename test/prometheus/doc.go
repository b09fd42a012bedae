// Package prometheus is issue 14's proof of the Prometheus conventions: a
// real Prometheus (Debian's prometheus package, installed by `make
// prometheus`, test/tools/prometheus.sh) scrapes a real local mesh (the
// controller, the local adapter, a sidecar per instance, traffic through
// them) with the configuration of examples/prometheus, filled in but
// otherwise verbatim, and PromQL through its HTTP API returns the series
// docs/metrics.md promises. The Grafana dashboard of examples/grafana is
// checked against the same Prometheus: every expression of every panel
// parses and returns at least one series on the test's mesh.
//
// WEFT_PROMETHEUS names the prometheus binary when it is not on PATH.
// The tests fail without one: the configuration is only proven by the
// real thing.
package prometheus
