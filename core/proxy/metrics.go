package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values of the metrics.
const (
	dirInbound  = "inbound"
	dirOutbound = "outbound"
)

// metrics are the proxy's Prometheus series, in a private registry so that
// two proxies in one process (tests) do not collide.
//
// For inbound traffic peer is the caller's service, for outbound the
// upstream service. Bytes are counted on the downstream connection: rx is
// what the downstream sent (the calling sidecar inbound, the local app
// outbound), tx what it received.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	bytes       *prometheus.CounterVec
	connections *prometheus.CounterVec
	active      *prometheus.GaugeVec
	denied      *prometheus.CounterVec
	limited     *prometheus.CounterVec
	faults      *prometheus.CounterVec
	overflow    *prometheus.CounterVec
	pending     *prometheus.GaugeVec
	mirrored    *prometheus.CounterVec
	version     prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "HTTP and gRPC requests handled, by direction, peer service and status code.",
		}, []string{"direction", "peer", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"direction", "peer"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_bytes_total",
			Help: "Bytes on downstream connections; rx received from the downstream, tx sent to it.",
		}, []string{"direction", "peer", "dir"}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_connections_total",
			Help: "Downstream connections accepted (inbound: after the mTLS handshake).",
		}, []string{"direction", "peer"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_connections_active",
			Help: "Downstream connections open now.",
		}, []string{"direction", "peer"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_authz_denied_total",
			Help: "Inbound connections or requests refused because no intention allows the caller.",
		}, []string{"peer"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_rate_limited_total",
			Help: "Inbound requests (or connections, limit=\"connection_limit\") refused by a limit, by caller service and limit.",
		}, []string{"peer", "limit"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_faults_injected_total",
			Help: "Outbound requests delayed or aborted by a route's fault injection, by upstream service and kind.",
		}, []string{"peer", "kind"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_circuit_breaker_overflow_total",
			Help: "Outbound requests, retries or connections refused by an upstream's circuit breaker, by upstream service and cap.",
		}, []string{"peer", "limit"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_circuit_breaker_pending",
			Help: "Outbound requests waiting for a slot of an upstream's circuit breaker (max_pending), by upstream service.",
		}, []string{"peer"}),
		mirrored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_mirrored_requests_total",
			Help: "Copies of outbound requests sent to a route's mirror, by mirror service and result (sent, error, dropped).",
		}, []string{"peer", "result"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_config_version",
			Help: "Version of the configuration applied last.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.bytes, m.connections, m.active, m.denied, m.limited, m.faults, m.overflow, m.pending, m.mirrored, m.version)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// connOpened counts a connection and returns the counters its bytes go to
// and a function to call once when it closes.
func (m *metrics) connOpened(direction, peer string) (rx, tx prometheus.Counter, closed func()) {
	m.connections.WithLabelValues(direction, peer).Inc()
	g := m.active.WithLabelValues(direction, peer)
	g.Inc()
	return m.bytes.WithLabelValues(direction, peer, "rx"), m.bytes.WithLabelValues(direction, peer, "tx"), g.Dec
}

func (m *metrics) request(direction, peer string, code int, d time.Duration) {
	m.requests.WithLabelValues(direction, peer, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(direction, peer).Observe(d.Seconds())
}
