package proxy

import (
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/refusals"
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
	refused     *prometheus.CounterVec
	limited     *prometheus.CounterVec
	faults      *prometheus.CounterVec
	overflow    *prometheus.CounterVec
	pending     *prometheus.GaugeVec
	mirrored    *prometheus.CounterVec
	ejections   *prometheus.CounterVec
	version     prometheus.Gauge
	info        *instanceInfo
	unavailable prometheus.Counter     // inbound requests answered with the signal
	appHealthy  prometheus.Gauge       // the app as the sidecar sees it
	sigRetried  *prometheus.CounterVec // outbound tries sent elsewhere on the signal
	// reports to the controller (report.go)
	reportsSent, reportsDropped prometheus.Counter
	// the share of each global rate limit in force (budgets.go)
	globalShare *prometheus.GaugeVec
	// end-user tokens (jwt.go)
	jwt jwtMetrics
	// HTTPS gateway listeners' certificate files (certfile.go)
	gwCerts gatewayCertMetrics
	// the listeners' defences and the intrusion tracker (protection.go)
	protectionMetrics

	// perRequest caches the series one request updates, by requestKey:
	// looking them up in the vectors cost every request a hash of its
	// labels and an allocation.
	perRequest sync.Map
}

type requestKey struct {
	direction, peer, route, subset string
	code                           int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "HTTP and gRPC requests handled, by direction, peer service, route and subset (outbound; \"\" when none) and status code.",
		}, []string{"direction", "peer", "route", "subset", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response, by direction, peer service, route and subset (outbound).",
			Buckets: bucketsSeconds(),
		}, []string{"direction", "peer", "route", "subset"}),
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
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_inbound_handshakes_refused_total",
			Help: "Inbound mTLS handshakes refused, by reason: not_tls, no_client_certificate, bad_certificate, peer_rejected, timeout, closed, reset, protocol, other.",
		}, []string{"reason"}),
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
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_outlier_ejections_total",
			Help: "Endpoints of an upstream ejected by outlier detection, by upstream service and reason (consecutive_5xx, consecutive_gateway_errors, consecutive_local_failures, success_rate).",
		}, []string{"peer", "reason"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_config_version",
			Help: "Version of the configuration applied last.",
		}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_app_unavailable_total",
			Help: "Inbound requests answered 503 with X-Weft-Unavailable: app (gRPC UNAVAILABLE): the application refused the connection, failed its health check, or closed the connection before answering a request safe to repeat.",
		}),
		appHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_app_healthy",
			Help: "1 while the application is up as its sidecar sees it (health check, refused connections), else 0.",
		}),
		sigRetried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_unavailable_retries_total",
			Help: "Outbound requests sent to another endpoint because the callee's sidecar answered X-Weft-Unavailable: app, by upstream service.",
		}, []string{"peer"}),
	}
	m.reportsSent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weft_stats_reports_sent_total",
		Help: "Golden-signal reports sent to the controller.",
	})
	m.reportsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weft_stats_reports_dropped_total",
		Help: "Golden-signal reports the controller did not take in time; their counts went into the next report.",
	})
	m.globalShare = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_rate_limit_global_share",
		Help: "Requests a second this sidecar admits under a global rate limit: its share of the limit, granted by the controller or, with the controller away, a fair share. By limit.",
	}, []string{"limit"})
	m.appHealthy.Set(1)
	m.protectionMetrics = newProtectionMetrics()
	for _, r := range refusals.Reasons {
		m.refused.WithLabelValues(r) // every reason from the start, at 0
	}
	m.info = &instanceInfo{}
	m.jwt = newJWTMetrics(m.reg)
	m.gwCerts = newGatewayCertMetrics(m.reg)
	m.reg.MustRegister(m.requests, m.duration, m.bytes, m.connections, m.active, m.denied, m.refused, m.limited, m.faults, m.overflow, m.pending, m.mirrored, m.ejections, m.version, m.info, m.unavailable, m.appHealthy, m.sigRetried,
		m.reportsSent, m.reportsDropped, m.globalShare, m.shielded, m.signals,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
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

// bucketsSeconds are the request duration buckets: the bounds the
// sidecar reports with (meshapi.LatencyBoundsMs), in seconds.
func bucketsSeconds() []float64 {
	b := make([]float64, len(meshapi.LatencyBoundsMs))
	for i, ms := range meshapi.LatencyBoundsMs {
		b[i] = ms / 1000
	}
	return b
}

// request counts a request; route and subset are the outbound route and
// subset that took it ("" for none, and inbound), strings of the
// configuration, not made per request.
func (m *metrics) request(direction, peer, route, subset string, code int, d time.Duration) {
	k := requestKey{direction, peer, route, subset, code}
	v, ok := m.perRequest.Load(k)
	if !ok {
		v, _ = m.perRequest.LoadOrStore(k, &requestSeries{
			count:    m.requests.WithLabelValues(direction, peer, route, subset, strconv.Itoa(code)),
			duration: m.duration.WithLabelValues(direction, peer, route, subset),
		})
	}
	rs := v.(*requestSeries)
	rs.count.Inc()
	rs.duration.Observe(d.Seconds())
}

// instanceInfo exports weft_instance_info, always 1, whose labels are the
// instance's identity and its scheduler's facts (nomad_job, nomad_alloc_id,
// ...): join it onto the other series to break them down by scheduler
// facts, e.g. weft_requests_total * on() group_left(nomad_job)
// weft_instance_info. The labels change with the configuration, so it is
// collected unchecked.
type instanceInfo struct {
	cur atomic.Pointer[prometheus.Desc]
	val atomic.Pointer[[]string]
}

var labelName = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// volatileLabels are scheduler labels that change every time the
// instance restarts (the local adapter's process IDs and restart count): a series with
// them would start anew at each restart, so weft_instance_info leaves
// them out and keeps the ones that name the workload stably.
var volatileLabels = map[string]bool{"pid": true, "proxy_pid": true, "restarts": true}

// targetLabels are the labels Prometheus gives every series of a target
// (job, instance): a scraped series with one of them has it renamed to
// exported_<name>, so the instance's ID is instance_id and scheduler
// labels of these names are left out.
var targetLabels = map[string]bool{"job": true, "instance": true}

// set points the metric at a configuration's instance and labels.
func (i *instanceInfo) set(cfg *meshapi.ProxyConfig) {
	names := []string{"instance_id", "service", "namespace"}
	values := []string{cfg.GetInstanceId(), cfg.GetService(), cfg.GetNamespace()}
	keys := make([]string, 0, len(cfg.GetLabels()))
	for k := range cfg.GetLabels() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]bool{"instance_id": true, "service": true, "namespace": true}
	for _, k := range keys {
		n := labelName.ReplaceAllString(k, "_")
		if n == "" || (n[0] >= '0' && n[0] <= '9') {
			n = "_" + n
		}
		if seen[n] || strings.HasPrefix(n, "__") || volatileLabels[n] || targetLabels[n] {
			continue
		}
		seen[n] = true
		names = append(names, n)
		values = append(values, cfg.GetLabels()[k])
	}
	desc := prometheus.NewDesc("weft_instance_info", "The instance this sidecar serves, with its scheduler's labels; always 1.", names, nil)
	i.cur.Store(desc)
	i.val.Store(&values)
}

// Describe sends nothing: the metric's labels follow the configuration.
func (i *instanceInfo) Describe(chan<- *prometheus.Desc) {}

// Collect sends the metric once a configuration has been applied.
func (i *instanceInfo) Collect(ch chan<- prometheus.Metric) {
	desc, vals := i.cur.Load(), i.val.Load()
	if desc == nil || vals == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, 1, *vals...)
}
