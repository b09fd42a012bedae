package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.MeshBinaries(nil), func(dir string) error { binDir = dir; return nil }))
}

// meshPolicy lets loadgen call api; loadgen -> vault is refused.
const meshPolicy = `
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

// sidecars is the number of instances meshPolicy's workloads run.
const sidecars = 3

// mesh is a running local mesh with a Prometheus scraping it.
type mesh struct {
	ctl   *harness.Controller
	prom  *promServer
	addr  map[string]string // service -> instance address
	calls int               // loadgen -> api requests answered 200
}

// startScrapedMesh starts the local mesh, Prometheus on the documented
// configuration, and waits until every target is up.
func startScrapedMesh(t *testing.T) *mesh {
	t.Helper()
	bin := prometheusBinary(t)
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("loadgen", app) + harness.Workload("api", app) + harness.Workload("vault", app)
	lm := harness.StartLocalMesh(t, binDir, t.TempDir(), meshPolicy, workloads, "127.0.106.2",
		"--adapter-option", "local.isolation=none")
	s := lm.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(sidecars))
	m := &mesh{ctl: lm.Controller, addr: map[string]string{}}

	// The sidecars' targets, in the shape of examples/prometheus/local-targets.json.
	var targets []fileSDGroup
	for _, in := range s.Instances {
		m.addr[in.Service] = in.Address
		port := in.Ports["admin"]
		if port == 0 {
			t.Fatalf("instance %s reports no admin port: %+v", in.ID, in.Ports)
		}
		targets = append(targets, fileSDGroup{
			Targets: []string{net.JoinHostPort(in.Address, strconv.Itoa(port))},
			Labels:  map[string]string{"service": in.Service},
		})
	}
	dir := t.TempDir()
	tf := filepath.Join(dir, "targets.json")
	b, err := json.Marshal(targets)
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, tf, string(b))

	cfg := filepath.Join(dir, "prometheus.yml")
	harness.WriteFile(t, cfg, fillConfig(t, "prometheus-local.yml", map[string]string{
		"DATA_DIR": m.ctl.DataDir, "CONTROLLER_ADMIN": m.ctl.Admin, "TARGETS_FILE": tf,
	}))
	m.prom = startPrometheus(t, bin, cfg)
	m.prom.waitTargetsUp(t, map[string]int{"weft-controller": 1, "weft-sidecars": sidecars})
	return m
}

// call sends n requests loadgen -> api through loadgen's sidecar, each
// answered 200.
func (m *mesh) call(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := "http://" + net.JoinHostPort(m.addr["loadgen"], "9101") + "/"
	for i := range n {
		code, body, err := harness.Get(ctx, base)
		if err != nil || code != http.StatusOK {
			t.Fatalf("request %d loadgen -> api: %d %q %v", i, code, body, err)
		}
		m.calls++
	}
}

// denied sends n requests loadgen -> vault, each refused 403.
func (m *mesh) denied(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		code, body, err := harness.Get(ctx, "http://"+net.JoinHostPort(m.addr["loadgen"], "9102")+"/")
		if err != nil || code != http.StatusForbidden {
			t.Fatalf("request %d loadgen -> vault: %d %q %v, want 403", i, code, body, err)
		}
	}
}

// TestPrometheusScrapesTheMesh is the proof: the documented configuration
// scrapes the controller (HTTPS, mesh CA, admin token) and every sidecar,
// and PromQL returns the requests the test sent and refused, the
// controller's streams (one per sidecar), and the sidecars' memory; then
// every query of the Grafana dashboard runs on the same data.
func TestPrometheusScrapesTheMesh(t *testing.T) {
	m := startScrapedMesh(t)
	p := m.prom
	denied := 0

	// Two batches of calls and of refusals, each waited for in Prometheus
	// on the caller's and the callee's sidecar, so that every counter has
	// risen between two samples of a rate's window.
	for _, batch := range []struct{ calls, denied int }{{20, 2}, {30, 2}} {
		m.call(t, batch.calls)
		m.denied(t, batch.denied)
		denied += batch.denied
		p.waitValue(t, `sum(weft_requests_total{job="weft-sidecars",service="api",direction="inbound",peer="loadgen",code="200"})`, float64(m.calls))
		p.waitValue(t, `sum(weft_requests_total{job="weft-sidecars",service="loadgen",direction="outbound",peer="api",code="200"})`, float64(m.calls))
		p.waitValue(t, `sum(weft_requests_total{job="weft-sidecars",service="loadgen",direction="outbound",peer="vault",code="403"})`, float64(denied))
		// The callee's sidecar counts each refusal by caller.
		p.waitValue(t, `sum(weft_authz_denied_total{job="weft-sidecars",service="vault",peer="loadgen"})`, float64(denied))
	}

	t.Run("inbound rate by caller", func(t *testing.T) {
		res := p.query(t, `sum by (peer) (rate(weft_requests_total{direction="inbound"}[30s]))`)
		v, ok := res.value(map[string]string{"peer": "loadgen"})
		if !ok || v <= 0 {
			t.Errorf("no positive rate for peer=\"loadgen\": %s", res)
		}
		if len(res) != 1 {
			t.Errorf("inbound traffic from %d callers, want loadgen alone: %s", len(res), res)
		}
	})
	t.Run("outbound requests by upstream", func(t *testing.T) {
		res := p.query(t, `sum by (service, peer) (weft_requests_total{direction="outbound",code="200"})`)
		if v, ok := res.value(map[string]string{"service": "loadgen", "peer": "api"}); !ok || v != float64(m.calls) {
			t.Errorf("loadgen's outbound requests to api = %v (found %v), want %d: %s", v, ok, m.calls, res)
		}
	})
	t.Run("latency histogram", func(t *testing.T) {
		res := p.query(t, `histogram_quantile(0.99, sum by (le, peer) (rate(weft_request_duration_seconds_bucket{direction="inbound",service="api"}[30s])))`)
		v, ok := res.value(map[string]string{"peer": "loadgen"})
		if !ok || !(v > 0) || v > 10 {
			t.Errorf("api's inbound p99 from loadgen = %v (found %v), want a positive number of seconds below 10: %s", v, ok, res)
		}
	})
	t.Run("controller streams", func(t *testing.T) {
		res := p.query(t, `sum(weft_controller_sidecar_streams{job="weft-controller"})`)
		if v, ok := res.value(nil); !ok || v != sidecars {
			t.Errorf("connected streams = %v (found %v), want %d: %s", v, ok, sidecars, res)
		}
		res = p.query(t, `weft_controller_sidecar_streams{state="acked"}`)
		if v, ok := res.value(map[string]string{"state": "acked"}); !ok || v != sidecars {
			t.Errorf("acked streams = %v (found %v), want %d: %s", v, ok, sidecars, res)
		}
	})
	t.Run("controller compile time", func(t *testing.T) {
		res := p.query(t, `weft_controller_compile_duration_seconds_count{job="weft-controller"}`)
		if v, ok := res.value(nil); !ok || v < 1 {
			t.Errorf("compilations = %v (found %v), want at least 1: %s", v, ok, res)
		}
	})
	t.Run("sidecar memory", func(t *testing.T) {
		res := p.query(t, `process_resident_memory_bytes{job="weft-sidecars"}`)
		if len(res) != sidecars {
			t.Errorf("%d sidecars with process_resident_memory_bytes, want %d: %s", len(res), sidecars, res)
		}
		for _, svc := range []string{"loadgen", "api", "vault"} {
			// A sidecar's RSS is above 1 MiB and below 1 GiB.
			if v, ok := res.value(map[string]string{"service": svc}); !ok || v < 1<<20 || v > 1<<30 {
				t.Errorf("%s's sidecar RSS = %v bytes (found %v), want between 1 MiB and 1 GiB", svc, v, ok)
			}
		}
	})
	t.Run("grafana dashboard", func(t *testing.T) { checkDashboard(t, p) })
	t.Run("instance info keeps its labels", func(t *testing.T) {
		res := p.query(t, `weft_instance_info{job="weft-sidecars",service="api"}`)
		if len(res) != 1 {
			t.Fatalf("%d weft_instance_info series for api, want 1: %s", len(res), res)
		}
		for name := range res[0].Metric {
			if strings.HasPrefix(name, "exported_") {
				t.Errorf("weft_instance_info has a label Prometheus renamed (%s): %s", name, res)
			}
		}
		if id := res[0].Metric["instance_id"]; !strings.HasPrefix(id, "api") {
			t.Errorf("weft_instance_info's instance_id = %q, want api's instance: %s", id, res)
		}
	})
}

// fileSDGroup is one group of a Prometheus file_sd targets file.
type fileSDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// fillConfig reads examples/prometheus/name and replaces each placeholder
// (which must be there) with its value: nothing else is changed but the
// scrape interval, 15s in the file, 1s here.
func fillConfig(t *testing.T, name string, values map[string]string) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "prometheus", name))
	if err != nil {
		t.Fatalf("reading the example configuration: %v", err)
	}
	s := string(b)
	values["scrape_interval: 15s"] = "scrape_interval: 1s"
	values["evaluation_interval: 15s"] = "evaluation_interval: 1s"
	for k, v := range values {
		if !strings.Contains(s, k) {
			t.Fatalf("examples/prometheus/%s has no %s", name, k)
		}
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// prometheusBinary finds the prometheus binary (WEFT_PROMETHEUS, else
// PATH); the test fails without one.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WEFT_PROMETHEUS"); p != "" {
		return p
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("no prometheus binary: run `make prometheus` (installs Debian's prometheus as root) or set WEFT_PROMETHEUS")
	}
	return p
}

// promServer is a Prometheus the test started.
type promServer struct {
	url string
}

func startPrometheus(t *testing.T, bin, config string) *promServer {
	t.Helper()
	listen := harness.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+listen, "--log.level=warn")
	harness.Start(t, "prometheus", cmd, harness.Options{LogTail: 60})
	p := &promServer{url: "http://" + listen}
	harness.Eventually(t, "prometheus to be ready", 60*time.Second, func() error {
		code, body, err := harness.Get(context.Background(), p.url+"/-/ready")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/-/ready = %d %q", code, body)
		}
		return nil
	})
	return p
}

// waitTargetsUp waits until every job has its number of targets, all up.
func (p *promServer) waitTargetsUp(t *testing.T, want map[string]int) {
	t.Helper()
	harness.Eventually(t, "every target to be up", 90*time.Second, func() error {
		var r struct {
			Status string `json:"status"`
			Data   struct {
				ActiveTargets []struct {
					ScrapePool string `json:"scrapePool"`
					ScrapeURL  string `json:"scrapeUrl"`
					Health     string `json:"health"`
					LastError  string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := harness.GetJSON(p.url+"/api/v1/targets?state=active", &r); err != nil {
			return err
		}
		up := map[string]int{}
		var down []string
		for _, tg := range r.Data.ActiveTargets {
			if tg.Health == "up" {
				up[tg.ScrapePool]++
			} else {
				down = append(down, fmt.Sprintf("%s %s: %s %s", tg.ScrapePool, tg.ScrapeURL, tg.Health, tg.LastError))
			}
		}
		for job, n := range want {
			if up[job] != n {
				return fmt.Errorf("job %s: %d targets up, want %d; not up: %v", job, up[job], n, down)
			}
		}
		return nil
	})
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

type vector []sample

func (v vector) String() string {
	b, _ := json.Marshal(v)
	return string(b)
}

// value is the value of the one series whose labels include match.
func (v vector) value(match map[string]string) (float64, bool) {
	var found []float64
	for _, s := range v {
		ok := true
		for k, want := range match {
			if s.Metric[k] != want {
				ok = false
			}
		}
		if !ok {
			continue
		}
		str, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return 0, false
		}
		found = append(found, f)
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}

// queryErr runs an instant query through /api/v1/query.
func (p *promServer) queryErr(expr string) (vector, error) {
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, fmt.Errorf("querying %s: %w", expr, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding the answer to %s: %w", expr, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s: %s", expr, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: a %s, want a vector", expr, r.Data.ResultType)
	}
	var v vector
	if err := json.Unmarshal(r.Data.Result, &v); err != nil {
		return nil, fmt.Errorf("decoding the vector of %s: %w", expr, err)
	}
	return v, nil
}

func (p *promServer) query(t *testing.T, expr string) vector {
	t.Helper()
	v, err := p.queryErr(expr)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitValue waits until expr is one series of value want.
func (p *promServer) waitValue(t *testing.T, expr string, want float64) {
	t.Helper()
	harness.Eventually(t, fmt.Sprintf("%s to be %v", expr, want), 60*time.Second, func() error {
		v, err := p.queryErr(expr)
		if err != nil {
			return err
		}
		got, ok := v.value(nil)
		if !ok || got != want {
			return fmt.Errorf("%s", v)
		}
		return nil
	})
}
