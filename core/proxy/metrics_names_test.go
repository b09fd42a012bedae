package proxy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestMetricNamesFollowPrometheusConventions lints every series the
// sidecar exports, each with a child, with client_golang's promlint (base
// units, _total on counters and only there, no camelCase, help text).
func TestMetricNamesFollowPrometheusConventions(t *testing.T) {
	m := newMetrics()
	m.request(dirInbound, "web", "", "", 200, time.Millisecond)
	rx, tx, closed := m.connOpened(dirInbound, "web")
	rx.Add(1)
	tx.Add(1)
	closed()
	m.denied.WithLabelValues("web").Inc()
	m.limited.WithLabelValues("web", "rate").Inc()
	m.faults.WithLabelValues("api", "abort").Inc()
	m.overflow.WithLabelValues("api", "max_requests").Inc()
	m.pending.WithLabelValues("api").Set(0)
	m.mirrored.WithLabelValues("api", "sent").Inc()
	m.ejections.WithLabelValues("api", "consecutive_5xx").Inc()
	m.sigRetried.WithLabelValues("api").Inc()
	m.globalShare.WithLabelValues("all").Set(1)
	m.jwt.failures.WithLabelValues("corp", "expired").Inc()
	m.jwt.valid.WithLabelValues("corp").Inc()
	m.shielded.WithLabelValues("inbound", "shed").Inc()
	m.info.set(&meshapi.ProxyConfig{InstanceId: "web-1", Service: "web"})
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var weft []*dto.MetricFamily
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "weft_") {
			weft = append(weft, mf)
		}
	}
	if len(weft) < 20 {
		t.Fatalf("only %d weft_ families gathered: a vector without a child is missing from the lint", len(weft))
	}
	problems, err := promlint.NewWithMetricFamilies(weft).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestInstanceInfoLabels checks weft_instance_info's label names: the
// instance's ID is instance_id, and a scheduler label Prometheus would
// rename (job, instance: it sets them on every series of a target) or that
// changes on every restart is left out, whatever its spelling.
func TestInstanceInfoLabels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   []string // label names
	}{
		{"none", nil, []string{"instance_id", "service", "namespace"}},
		{"scheduler facts", map[string]string{"nomad_job": "shop", "alloc_id": "a1"},
			[]string{"instance_id", "service", "namespace", "alloc_id", "nomad_job"}},
		{"target labels", map[string]string{"job": "x", "instance": "y", "zone": "z"},
			[]string{"instance_id", "service", "namespace", "zone"}},
		{"target labels spelled otherwise", map[string]string{"instance-id": "x", "job.": "y"},
			[]string{"instance_id", "service", "namespace", "job_"}},
		{"restart counters", map[string]string{"pid": "1", "proxy_pid": "2", "restarts": "3"},
			[]string{"instance_id", "service", "namespace"}},
		{"reserved and digits", map[string]string{"__name__": "x", "1st": "y"},
			[]string{"instance_id", "service", "namespace", "_1st"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var i instanceInfo
			i.set(&meshapi.ProxyConfig{InstanceId: "web-1", Service: "web", Namespace: "default", Labels: tc.labels})
			ch := make(chan prometheus.Metric, 1)
			i.Collect(ch)
			var d dto.Metric
			if err := (<-ch).Write(&d); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range d.GetLabel() {
				got = append(got, l.GetName())
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("labels %v, want %v", got, tc.want)
			}
		})
	}
}
