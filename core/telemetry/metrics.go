package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/registry"
)

// Sources are what the controller's metrics read at each scrape; a nil
// one leaves its series out.
type Sources struct {
	// Streams lists the connected sidecars (meshserver.Server.Status).
	Streams func() []meshserver.StreamStatus
	// Adapters lists the supervised adapter plugins.
	Adapters func() []api.AdapterReport
	// Entries lists the instances the adapters report.
	Entries func() []registry.Entry
	// Roots lists the CA's roots.
	Roots func() []ca.RootInfo
	// Collector is the sidecars' reports.
	Collector *Collector
	// Dropped counts, per reason, the instances left out of the mesh or
	// in a proxy mode policy does not give them (controller.Dropped).
	Dropped func() (listed []model.Dropped, counts map[string]int)
}

// Metrics is the controller's own Prometheus registry: what GET /metrics
// on the admin API answers.
type Metrics struct {
	reg     *prometheus.Registry
	builds  *prometheus.CounterVec
	compile prometheus.Histogram
	configs prometheus.Gauge
}

// NewMetrics returns the controller's metrics over src.
func NewMetrics(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_controller_builds_total",
			Help: "Compilations of the proxy configurations, by kind: full (every configuration) or incremental (what a change touched).",
		}, []string{"kind"}),
		compile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_controller_compile_duration_seconds",
			Help:    "Time one compilation took.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		configs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_controller_build_configs",
			Help: "Configurations the last compilation produced (all of them when full, else the ones it changed).",
		}),
	}
	m.builds.WithLabelValues("full")
	m.builds.WithLabelValues("incremental")
	m.reg.MustRegister(m.builds, m.compile, m.configs, &scrape{src: src},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return m
}

// Build counts one compilation: give it to core/controller as an
// Observer.
func (m *Metrics) Build(took time.Duration, configs int, full bool) {
	kind := "incremental"
	if full {
		kind = "full"
	}
	m.builds.WithLabelValues(kind).Inc()
	m.compile.Observe(took.Seconds())
	m.configs.Set(float64(configs))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry, for tests and for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// scrape reads its sources at every scrape.
type scrape struct{ src Sources }

var (
	descStreams      = prometheus.NewDesc("weft_controller_sidecar_streams", "Connected sidecar config streams, by the state of their last version: acked (the sidecar applied the latest), pending (not yet), nacked (it refused one).", []string{"state"}, nil)
	descAdapterUp    = prometheus.NewDesc("weft_controller_adapter_up", "1 while the adapter plugin runs.", []string{"adapter"}, nil)
	descAdapterRest  = prometheus.NewDesc("weft_controller_adapter_restarts_total", "Restarts of the adapter plugin.", []string{"adapter"}, nil)
	descAdapterFail  = prometheus.NewDesc("weft_controller_adapter_source_failing", "1 while the adapter cannot read its scheduler (its last snapshot stays in force).", []string{"adapter"}, nil)
	descInstances    = prometheus.NewDesc("weft_controller_instances", "Instances the adapters report, by adapter and health.", []string{"adapter", "health"}, nil)
	descRootExpiry   = prometheus.NewDesc("weft_controller_ca_root_expiry_timestamp_seconds", "When each CA root expires, in Unix seconds.", []string{"root", "active"}, nil)
	descReports      = prometheus.NewDesc("weft_controller_reports_received_total", "Golden-signal reports taken from sidecars.", nil, nil)
	descRefused      = prometheus.NewDesc("weft_controller_reports_refused_total", "Golden-signal reports refused, by reason: identity, instance (a sidecar reporting for an instance not its own or unknown), invalid, relayed_out_of_window (a report another replica relayed, dated outside the window).", []string{"reason"}, nil)
	descCellsDropped = prometheus.NewDesc("weft_controller_report_cells_dropped_total", "Report cells not counted because a step of the window was full.", nil, nil)
	descSidecarDrop  = prometheus.NewDesc("weft_controller_sidecar_reports_dropped_total", "Reports the sidecars say they could not send in time (their counts went into later reports), added up over the sidecars that reported.", nil, nil)
	descDropped      = prometheus.NewDesc("weft_controller_dropped", "Instances left out of the mesh, upstream ports ignored, and instances whose scheduler and policy disagree on their proxy mode (proxy_mode_refused: not served; proxy_mode_mismatch: a sidecar where policy wants a shared proxy), by reason: what weft status lists under DROPPED.", []string{"reason"}, nil)
	descReporting    = prometheus.NewDesc("weft_controller_reporting_instances", "Instances whose sidecar has reported since the controller started.", nil, nil)
)

// Describe sends nothing: the series follow the sources (an unchecked
// collector).
func (s *scrape) Describe(chan<- *prometheus.Desc) {}

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	if s.src.Streams != nil {
		n := map[string]float64{"acked": 0, "pending": 0, "nacked": 0}
		for _, st := range s.src.Streams() {
			switch {
			case st.RejectedVersion != 0:
				n["nacked"]++
			case st.AckedVersion == st.Version:
				n["acked"]++
			default:
				n["pending"]++
			}
		}
		for k, v := range n {
			ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, v, k)
		}
	}
	if s.src.Adapters != nil {
		for _, a := range s.src.Adapters() {
			ch <- prometheus.MustNewConstMetric(descAdapterUp, prometheus.GaugeValue, b2f(a.Running), a.Name)
			ch <- prometheus.MustNewConstMetric(descAdapterRest, prometheus.CounterValue, float64(a.Restarts), a.Name)
			ch <- prometheus.MustNewConstMetric(descAdapterFail, prometheus.GaugeValue, b2f(a.SourceFailing), a.Name)
		}
	}
	if s.src.Entries != nil {
		type k struct{ adapter, health string }
		n := map[k]float64{}
		for _, e := range s.src.Entries() {
			h := string(e.Instance.Health)
			if h == "" {
				h = "unknown"
			}
			n[k{e.Adapter, h}]++
		}
		for key, v := range n {
			ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, v, key.adapter, key.health)
		}
	}
	if s.src.Dropped != nil {
		_, counts := s.src.Dropped()
		for reason, n := range counts {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.GaugeValue, float64(n), reason)
		}
	}
	if s.src.Roots != nil {
		for _, r := range s.src.Roots() {
			ch <- prometheus.MustNewConstMetric(descRootExpiry, prometheus.GaugeValue, float64(r.NotAfter.Unix()), r.ID, boolLabel(r.Active))
		}
	}
	if c := s.src.Collector; c != nil {
		cs := c.Counters()
		ch <- prometheus.MustNewConstMetric(descReports, prometheus.CounterValue, float64(cs.Received))
		for _, r := range []string{"identity", "instance", "invalid"} {
			ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(cs.Refused[r]), r)
		}
		ch <- prometheus.MustNewConstMetric(descCellsDropped, prometheus.CounterValue, float64(cs.CellsDropped))
		ch <- prometheus.MustNewConstMetric(descSidecarDrop, prometheus.CounterValue, float64(cs.SidecarDropped))
		ch <- prometheus.MustNewConstMetric(descReporting, prometheus.GaugeValue, float64(cs.Instances))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
