package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/telemetry"
	"github.com/weftmesh/weft/test/harness"
)

const statsPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}
service "loadgen" {
  protocol = "http"
  binding "local" { name = "loadgen" }
  upstream "api" { local_port = 9101 }
  upstream "vault" { local_port = 9102 }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
}
service "vault" {
  protocol = "http"
  binding "local" { name = "vault" }
}
intention "loadgen" "api" { action = "allow" }
`

// TestStatAgreesWithTheLoad is issue 14's proof of the golden signals:
// a known load through the mesh (every request and its status counted
// here, some answered 500 on purpose, some refused by an intention),
// then `weft stat --json`, the real CLI against the real controller,
// agrees with the load's own counts: requests exactly (within 1% is the
// bar), the success rate exactly, and the p99 within one histogram
// bucket of the p99 the load measured.
//
// Latency is measured at three places: here (the whole call, with the
// loopback hop into the caller's sidecar and the HTTP client's own
// work), at the caller's sidecar (route figures: its outbound hop, the
// callee's sidecar and the app) and at the callee's sidecar (edge
// figures: the app alone). Only the caller's view covers nearly what
// the load measures, so that is the one held within a bucket; the
// callee's, a strict part of the same calls, must not be above it.
func TestStatAgreesWithTheLoad(t *testing.T) {
	// Sidecars started by the local adapter inherit the controller's
	// environment: report every 200ms instead of 10s.
	t.Setenv("WEFT_REPORT_INTERVAL", "200ms")
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("loadgen", app) + harness.Workload("api", app) + harness.Workload("vault", app)
	ctl, _ := startLocalMesh(t, statsPolicy, workloads, "127.0.101.2")
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))
	addr := map[string]string{}
	for _, in := range s.Instances {
		addr[in.Service] = in.Address
	}
	// The api app answers /healthz with 500 from now on (asked on its own
	// port: through the mesh it refuses).
	req, _ := http.NewRequest("POST", "http://"+net.JoinHostPort(addr["api"], "8080")+"/healthz/fail", nil)
	if code, body, _, err := harness.Do(http.DefaultClient, req); err != nil || code/100 != 2 {
		t.Fatalf("making the api app fail /healthz: %d %q %v", code, body, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := "http://" + net.JoinHostPort(addr["loadgen"], "9101")
	// The load: 300 GET / (200) and 60 GET /healthz (500), interleaved.
	var (
		sent, ok  int
		latencies []time.Duration
	)
	for i := range 360 {
		path := "/"
		if i%6 == 5 {
			path = "/healthz"
		}
		start := time.Now()
		code, body, err := harness.Get(ctx, base+path)
		d := time.Since(start)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		sent++
		latencies = append(latencies, d)
		switch {
		case code == 200 && path == "/":
			ok++
		case code == 500 && path == "/healthz":
		default:
			t.Fatalf("GET %s = %d %q", path, code, body)
		}
	}
	// And 5 calls no intention allows.
	for range 5 {
		code, body, err := harness.Get(ctx, "http://"+net.JoinHostPort(addr["loadgen"], "9102")+"/")
		if err != nil || code != http.StatusForbidden {
			t.Fatalf("loadgen -> vault = %d %q %v, want 403", code, body, err)
		}
	}
	slices.Sort(latencies)
	clientP99 := latencies[int(0.99*float64(len(latencies)))-1]
	clientMs := float64(clientP99) / float64(time.Millisecond)

	weft := filepath.Join(binDir, "weft")
	var rep api.StatsReport
	var edge, vault *api.EdgeStats
	var route *api.RouteStats
	harness.Eventually(t, "weft stat to count every request", 30*time.Second, func() error {
		out, errOut, code := ctl.RunWeft(t, weft, "stat", "--json", "--window", "2m")
		if code != 0 {
			return fmt.Errorf("weft stat --json exited %d: %s", code, errOut)
		}
		rep = api.StatsReport{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return fmt.Errorf("decoding weft stat --json: %w\n%s", err, out)
		}
		edge, vault, route = nil, nil, nil
		for i, e := range rep.Edges {
			switch {
			case e.Caller == "loadgen" && e.Callee == "api":
				edge = &rep.Edges[i]
				for j, r := range e.Routes {
					if r.Route == "" && r.Subset == "" {
						route = &e.Routes[j]
					}
				}
			case e.Caller == "loadgen" && e.Callee == "vault":
				vault = &rep.Edges[i]
			}
		}
		switch {
		case edge == nil || route == nil:
			return fmt.Errorf("no edge loadgen -> api with its route yet: %s", out)
		case edge.Golden.Requests < uint64(sent) || route.Golden.Requests < uint64(sent):
			return fmt.Errorf("loadgen -> api: %d requests (callee's view), %d (caller's), want %d", edge.Golden.Requests, route.Golden.Requests, sent)
		case vault == nil || vault.Golden.Denied < 5 || len(rep.RecentDenials) < 5:
			return fmt.Errorf("loadgen -> vault: denials not all in yet: %+v, recent %d", vault, len(rep.RecentDenials))
		}
		return nil
	})

	for _, c := range []struct {
		view string
		g    api.Golden
	}{{"callee's (edge)", edge.Golden}, {"caller's (route)", route.Golden}} {
		t.Run(c.view, func(t *testing.T) {
			// Requests: exact is within 1%.
			if d := float64(c.g.Requests) - float64(sent); d < -0.01*float64(sent) || d > 0.01*float64(sent) {
				t.Errorf("requests = %d, the load sent %d", c.g.Requests, sent)
			}
			if want := float64(ok) / float64(sent); c.g.Successes != uint64(ok) || c.g.SuccessRate != want {
				t.Errorf("successes %d (rate %v), the load saw %d of %d (%v)", c.g.Successes, c.g.SuccessRate, ok, sent, want)
			}
			var n uint64
			for _, b := range c.g.LatencyBuckets {
				n += b
			}
			if n != c.g.Requests || len(c.g.LatencyBuckets) != len(rep.LatencyBoundsMs)+1 {
				t.Errorf("latency buckets %v: %d counts for %d requests", c.g.LatencyBuckets, n, c.g.Requests)
			}
		})
	}
	got, want := telemetry.Bucket(route.Golden.P99Ms), telemetry.Bucket(clientMs)
	t.Logf("p99: load %.3fms (bucket %d), caller's sidecar %.3fms (bucket %d), callee's sidecar %.3fms (bucket %d); bounds %v ms",
		clientMs, want, route.Golden.P99Ms, got, edge.Golden.P99Ms, telemetry.Bucket(edge.Golden.P99Ms), meshapi.LatencyBoundsMs)
	if got < want-1 || got > want+1 {
		t.Errorf("the caller's sidecar's p99 %.3fms is in bucket %d, the load's %.3fms in %d: more than one bucket apart", route.Golden.P99Ms, got, clientMs, want)
	}
	if telemetry.Bucket(edge.Golden.P99Ms) > want {
		t.Errorf("the callee's sidecar's p99 %.3fms (a part of each call) is in a higher bucket than the load's %.3fms", edge.Golden.P99Ms, clientMs)
	}
	if d := rep.RecentDenials[0]; d.Callee != "vault" || d.Caller != id("loadgen") || d.Reason == "" || d.Path != "/" {
		t.Errorf("newest denial %+v, want loadgen's GET / refused by vault with a reason", d)
	}
	// The service view: api served every request, from one reporting
	// instance.
	var apiStats *api.ServiceStats
	for i := range rep.Services {
		if rep.Services[i].Service == "api" {
			apiStats = &rep.Services[i]
		}
	}
	if apiStats == nil || apiStats.Golden.Requests != uint64(sent) || apiStats.Instances != 1 {
		t.Errorf("service api: %+v, want %d requests from 1 instance", apiStats, sent)
	}
	// The controller's own /metrics, with the admin token, as Prometheus
	// would scrape it.
	tok, err := api.ReadToken(ctl.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	mreq, _ := http.NewRequest("GET", ctl.URL()+"/metrics", nil)
	mreq.Header.Set("Authorization", "Bearer "+tok)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ctl.RootPool(t)}}}
	code, metrics, _, err := harness.Do(hc, mreq)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, want := range []string{`weft_controller_sidecar_streams{state="acked"} 3`, `weft_controller_adapter_up{adapter="local"} 1`,
		`weft_controller_instances{adapter="local",health="passing"} 3`, "weft_controller_compile_duration_seconds_count ",
		`weft_controller_reports_refused_total{reason="instance"} 0`, "weft_controller_ca_root_expiry_timestamp_seconds{", "process_resident_memory_bytes "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("the controller's /metrics lacks %s", want)
		}
	}
	if !strings.Contains(metrics, "weft_controller_reports_received_total ") || strings.Contains(metrics, "weft_controller_reports_received_total 0\n") {
		t.Errorf("the controller's /metrics counts no report received")
	}
	mreq.Header.Del("Authorization")
	if code, _, _, _ := harness.Do(hc, mreq); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token: %d, want 401", code)
	}

	// The table a person reads.
	out, errOut, code := ctl.RunWeft(t, weft, "stat", "api", "--window", "2m")
	if code != 0 {
		t.Fatalf("weft stat api: %d %s", code, errOut)
	}
	t.Logf("weft stat api:\n%s", out)
	want83 := fmt.Sprintf("%.2f%%", 100*float64(ok)/float64(sent))
	if !strings.Contains(out, "api") || !strings.Contains(out, "1/1") || !strings.Contains(out, want83) {
		t.Errorf("weft stat api lacks api, 1/1 or %s:\n%s", want83, out)
	}
}
