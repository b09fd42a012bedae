package dashboard_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/dashboard"
	"github.com/weftmesh/weft/core/dashboard/dashboardtest"
)

const token = "fixture-token-5f1d"

// budget is the virtual time the page gets to fetch and draw: less than
// its refresh interval, so it draws once.
const budget = 3 * time.Second

// stub is an admin API that serves the dashboard and answers GET
// /v1/status and GET /v1/stats with the fixtures, with the token, and
// records what it was asked.
type stub struct {
	*httptest.Server
	status, stats []byte
	statsCode     int // 0: the fixture; else this code

	mu   sync.Mutex
	seen []string // "METHOD URI auth"
}

func newStub(t *testing.T, statsCode int) *stub {
	t.Helper()
	return newStubWith(t, fixture(t, "status.json"), fixture(t, "stats.json"), statsCode)
}

func newStubWith(t *testing.T, status, stats []byte, statsCode int) *stub {
	t.Helper()
	s := &stub{status: status, stats: stats, statsCode: statsCode}
	ui := dashboard.Handler()
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.RequestURI+" "+r.Header.Get("Authorization"))
		s.mu.Unlock()
		if dashboard.Serves(r) {
			ui.ServeHTTP(w, r)
			return
		}
		if !api.Authorized(r, token) {
			http.Error(w, api.Unauthorized, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/status":
			w.Write(s.status)
		case "/v1/stats":
			if s.statsCode != 0 {
				http.Error(w, "404 page not found", s.statsCode)
				return
			}
			w.Write(s.stats)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *stub) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFixturesMatchTheAPI: the fixtures are what the admin API answers:
// they decode into core/api's types with no field unknown to them (but
// proxy_version, the sidecar version another change adds to status).
func TestFixturesMatchTheAPI(t *testing.T) {
	for _, tc := range []struct {
		file string
		into any
	}{{"stats.json", &api.StatsReport{}}, {"status.json", &api.StatusReport{}}} {
		t.Run(tc.file, func(t *testing.T) {
			b := fixture(t, tc.file)
			if tc.file == "status.json" {
				var raw map[string]any
				if err := json.Unmarshal(b, &raw); err != nil {
					t.Fatal(err)
				}
				for _, s := range raw["sidecars"].([]any) {
					delete(s.(map[string]any), "proxy_version")
				}
				b, _ = json.Marshal(raw)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(tc.into); err != nil {
				t.Fatalf("%s is not a core/api answer: %v", tc.file, err)
			}
		})
	}
}

// TestPage loads the dashboard in headless Chromium against the fixtures
// and reads what it drew.
func TestPage(t *testing.T) {
	s := newStub(t, 0)
	page := dashboardtest.DumpDOM(t, s.URL+"/ui/#token="+token, budget)
	state := dashboardtest.Find(page, "state")
	if len(state) != 1 || state[0].Attr["data-state"] != "ok" || state[0].Attr["data-loads"] != "1" {
		t.Fatalf("state %s, want ok after one load; requests: %q", dashboardtest.Sprint(state), s.requests())
	}

	t.Run("the token goes in the header, never in a URL", func(t *testing.T) {
		var api int
		for _, r := range s.requests() {
			uri, auth, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(r, "GET "), "HEAD "), " ")
			if strings.Contains(uri, token) {
				t.Errorf("the token crossed in a URL: %q", r)
			}
			if strings.HasPrefix(uri, "/v1/") {
				api++
				if auth != "Bearer "+token {
					t.Errorf("%s sent Authorization %q", uri, auth)
				}
			}
		}
		if api != 2 {
			t.Errorf("%d API requests, want GET /v1/status and /v1/stats: %q", api, s.requests())
		}
	})

	t.Run("topology: every service, idle ones too, and every edge", func(t *testing.T) {
		nodes := dashboardtest.Find(page, "node")
		var names []string
		for _, n := range nodes {
			names = append(names, n.Attr["data-service"])
		}
		if got := strings.Join(names, ","); got != "api,billing,cache,frontend,store" {
			t.Errorf("nodes %s, want api,billing,cache,frontend,store", got)
		}
		edges := []struct{ caller, callee, requests, denied, text string }{
			{"frontend", "api", "1200", "0", ""},
			{"api", "store", "870", "0", ""},
			{"api", "cache", "600", "0", ""},
			{"frontend", "store", "30", "30", ""},
		}
		if got := dashboardtest.Find(page, "edge"); len(got) != len(edges) {
			t.Errorf("%d edges, want %d:%s", len(got), len(edges), dashboardtest.Sprint(got))
		}
		for _, e := range edges {
			got := dashboardtest.FindWhere(page, "edge", "data-caller", e.caller, "data-callee", e.callee)
			if len(got) != 1 || got[0].Attr["data-requests"] != e.requests || got[0].Attr["data-denied"] != e.denied {
				t.Errorf("edge %s -> %s:%s, want %s requests, %s denied", e.caller, e.callee, dashboardtest.Sprint(got), e.requests, e.denied)
			}
		}
		if d := dashboardtest.FindWhere(page, "edge", "data-caller", "frontend", "data-callee", "store"); len(d) == 1 && !strings.Contains(d[0].Attr["class"], "denied") {
			t.Errorf("the denied edge is not drawn as denied: %v", d[0].Attr)
		}
	})

	t.Run("services with golden signals", func(t *testing.T) {
		store := dashboardtest.FindWhere(page, "service", "data-service", "store")
		if len(store) != 1 || !strings.Contains(store[0].Text, "94.4%") || !strings.Contains(store[0].Text, "95 ms") || !strings.Contains(store[0].Text, "1/1 healthy") {
			t.Errorf("store row:%s, want 1/1 healthy, 94.4%% success, p99 95 ms", dashboardtest.Sprint(store))
		}
		api := dashboardtest.FindWhere(page, "service", "data-service", "api")
		if len(api) != 1 || !strings.Contains(api[0].Text, "1/2 healthy") || !strings.Contains(api[0].Text, "20.0") {
			t.Errorf("api row:%s, want 1/2 healthy and 20.0 rps", dashboardtest.Sprint(api))
		}
	})

	t.Run("flows: allowed and denied, with their counts", func(t *testing.T) {
		denied := dashboardtest.Find(page, "denied-flow")
		if len(denied) != 1 || denied[0].Attr["data-caller"] != "frontend" || denied[0].Attr["data-callee"] != "store" ||
			!strings.Contains(denied[0].Text, "denied") || denied[0].Attr["data-denied"] != "30" {
			t.Errorf("denied flows:%s, want frontend -> store, 30 denied", dashboardtest.Sprint(denied))
		}
		allowed := dashboardtest.FindWhere(page, "flow", "data-caller", "frontend", "data-callee", "api")
		if len(allowed) != 1 || !strings.Contains(allowed[0].Text, "1,200") || !strings.Contains(allowed[0].Text, "allowed") {
			t.Errorf("frontend -> api:%s, want 1,200 requests, allowed", dashboardtest.Sprint(allowed))
		}
	})

	t.Run("recent denials, the same ones counted in one row, hostile text shown as text", func(t *testing.T) {
		d := dashboardtest.Find(page, "denial")
		if len(d) != 2 || d[0].Attr["data-count"] != "2" || d[1].Attr["data-count"] != "1" || !strings.Contains(d[0].Text, `/<img src=x onerror="document.title='pwned'">`) || !strings.Contains(d[0].Text, "no intention allows frontend -> store") {
			t.Errorf("denials:%s", dashboardtest.Sprint(d))
		}
		if n := dashboardtest.Tags(page, "img"); n != 0 {
			t.Errorf("the page holds %d <img> elements: a denial's path was written as HTML", n)
		}
		if n := dashboardtest.Tags(page, "script"); n != 1 {
			t.Errorf("the page holds %d <script> elements, want its own one", n)
		}
		if !strings.Contains(page, "<title>Weft mesh</title>") {
			t.Error("the page's title changed: a denial's text ran as script")
		}
	})

	t.Run("instances with health, its source and scheduler labels", func(t *testing.T) {
		in := dashboardtest.FindWhere(page, "instance", "data-instance", "api-1")
		if len(in) != 1 || in[0].Attr["data-health"] != "critical" || !strings.Contains(in[0].Text, "sidecar check") || !strings.Contains(in[0].Text, "GET /healthz: 503") {
			t.Errorf("api-1:%s, want critical from the sidecar check, with its reason", dashboardtest.Sprint(in))
		}
		in = dashboardtest.FindWhere(page, "instance", "data-instance", "api-0")
		if len(in) != 1 || !strings.Contains(in[0].Text, "job=shop") || !strings.Contains(in[0].Text, "alloc=9f1c") {
			t.Errorf("api-0:%s, want its labels", dashboardtest.Sprint(in))
		}
		if n := len(dashboardtest.Find(page, "instance")); n != 6 {
			t.Errorf("%d instances, want 6", n)
		}
	})

	t.Run("sidecars: version, ACK/NACK, certificate expiry", func(t *testing.T) {
		sc := dashboardtest.FindWhere(page, "sidecar", "data-instance", "api-0")
		if len(sc) != 1 || !strings.Contains(sc[0].Text, "v0.14.0") || !strings.Contains(sc[0].Text, "ACK") || sc[0].Attr["data-acked"] != "true" {
			t.Errorf("api-0's sidecar:%s, want v0.14.0, ACK", dashboardtest.Sprint(sc))
		}
		sc = dashboardtest.FindWhere(page, "sidecar", "data-instance", "api-1")
		if len(sc) != 1 || !strings.Contains(sc[0].Text, "NACK") || !strings.Contains(sc[0].Text, `unknown subset`) || sc[0].Attr["data-acked"] != "false" {
			t.Errorf("api-1's sidecar:%s, want NACK with its error", dashboardtest.Sprint(sc))
		}
		// The fixture's certificates expired long before this test ran.
		sc = dashboardtest.FindWhere(page, "sidecar", "data-instance", "store-0")
		if len(sc) != 1 || !strings.Contains(sc[0].Text, "expired") {
			t.Errorf("store-0's sidecar:%s, want its certificate shown expired", dashboardtest.Sprint(sc))
		}
	})

	t.Run("CA roots", func(t *testing.T) {
		r := dashboardtest.Find(page, "root")
		if len(r) != 1 || !strings.Contains(r[0].Text, "active") || !strings.Contains(r[0].Text, "Weft weft.test root") {
			t.Errorf("roots:%s", dashboardtest.Sprint(r))
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		file := filepath.Join(dashboardtest.ArtifactDir(t, "dashboard-fixture"), "dashboard.png")
		dashboardtest.Screenshot(t, s.URL+"/ui/#token="+token, file, budget)
		t.Logf("screenshot of the dashboard on the fixtures: %s", file)
	})
}

// TestPageStates: what the page shows without a token, with a refused
// one, and from a controller that has no /v1/stats.
func TestPageStates(t *testing.T) {
	t.Run("no token: the form, and no API request", func(t *testing.T) {
		s := newStub(t, 0)
		page := dashboardtest.DumpDOM(t, s.URL+"/ui/", budget)
		if st := dashboardtest.Find(page, "state"); len(st) != 1 || st[0].Attr["data-state"] != "signed-out" {
			t.Errorf("state:%s, want signed-out", dashboardtest.Sprint(st))
		}
		if l := dashboardtest.Find(page, "login"); len(l) != 1 || l[0].Attr["hidden"] != "" && l[0].Attr["hidden"] != "hidden" {
			t.Errorf("login:%s", dashboardtest.Sprint(l))
		} else if _, hidden := l[0].Attr["hidden"]; hidden {
			t.Error("the token form is hidden")
		}
		for _, r := range s.requests() {
			if strings.Contains(r, "/v1/") {
				t.Errorf("asked the API without a token: %q", r)
			}
		}
	})

	t.Run("a refused token: the form says so", func(t *testing.T) {
		s := newStub(t, 0)
		page := dashboardtest.DumpDOM(t, s.URL+"/ui/#token=wrong", budget)
		st := dashboardtest.Find(page, "state")
		e := dashboardtest.Find(page, "login-error")
		if len(st) != 1 || st[0].Attr["data-state"] != "unauthorized" || len(e) != 1 || !strings.Contains(e[0].Text, "DATA_DIR/admin.token") {
			t.Errorf("state:%s error:%s, want unauthorized, naming DATA_DIR/admin.token", dashboardtest.Sprint(st), dashboardtest.Sprint(e))
		}
		if n := len(dashboardtest.Find(page, "instance")); n != 0 {
			t.Errorf("%d instances drawn with a refused token", n)
		}
	})

	// Replicated controllers' versions lie above 2^63 (the policy's raft
	// index in the high bits); neighbours there are one JavaScript number.
	t.Run("versions above 2^53 compared exactly", func(t *testing.T) {
		const hi, lo = "9223372041149743106", "9223372041149743105" // 1<<63 | 1<<32 | 2, and one less
		status := string(fixture(t, "status.json"))
		for _, r := range []struct{ instance, old, new string }{
			{"api-0", `"version": 7,
      "acked_version": 7,`, `"version": ` + hi + `,
      "acked_version": ` + lo + `,`}, // sent, not acknowledged yet
			{"api-1", `"version": 7,
      "acked_version": 6,`, `"version": ` + hi + `,
      "acked_version": ` + lo + `,`},
			{"api-1", `"rejected_version": 7,`, `"rejected_version": ` + hi + `,`},
			{"billing-0", `"version": 7,
      "acked_version": 7,`, `"version": ` + hi + `,
      "acked_version": ` + hi + `,`},
		} {
			i := strings.Index(status, `"instance": "`+r.instance+`"`)
			j := strings.Index(status[i:], r.old)
			if i < 0 || j < 0 {
				t.Fatalf("fixture: no %q for %s", r.old, r.instance)
			}
			status = status[:i+j] + r.new + status[i+j+len(r.old):]
		}
		s := newStubWith(t, []byte(status), fixture(t, "stats.json"), 0)
		page := dashboardtest.DumpDOM(t, s.URL+"/ui/#token="+token, budget)
		want := map[string]struct{ acked, pill string }{
			"api-0": {"false", "pending"}, "api-1": {"false", "NACK"}, "billing-0": {"true", "ACK"},
		}
		for _, sc := range dashboardtest.Find(page, "sidecar") {
			w, ok := want[sc.Attr["data-instance"]]
			if !ok {
				continue
			}
			delete(want, sc.Attr["data-instance"])
			if sc.Attr["data-acked"] != w.acked || !strings.Contains(sc.Text, w.pill) || (w.pill == "ACK" && strings.Contains(sc.Text, "NACK")) {
				t.Errorf("sidecar %s: data-acked=%s text %q, want %s and %s", sc.Attr["data-instance"], sc.Attr["data-acked"], sc.Text, w.acked, w.pill)
			}
		}
		if len(want) != 0 {
			t.Errorf("sidecars not drawn: %v", want)
		}
	})

	t.Run("no /v1/stats: status is drawn, with a notice", func(t *testing.T) {
		s := newStub(t, http.StatusNotFound)
		page := dashboardtest.DumpDOM(t, s.URL+"/ui/#token="+token, budget)
		st := dashboardtest.Find(page, "state")
		n := dashboardtest.Find(page, "notice")
		if len(st) != 1 || st[0].Attr["data-state"] != "no-stats" || len(n) != 1 || !strings.Contains(n[0].Text, "/v1/stats") {
			t.Errorf("state:%s notice:%s, want no-stats with a notice", dashboardtest.Sprint(st), dashboardtest.Sprint(n))
		}
		if got := len(dashboardtest.Find(page, "instance")); got != 6 {
			t.Errorf("%d instances, want 6", got)
		}
		if got := len(dashboardtest.Find(page, "node")); got != 5 {
			t.Errorf("%d services in the graph, want the 5 of status", got)
		}
		if got := len(dashboardtest.Find(page, "edge")); got != 0 {
			t.Errorf("%d edges without stats", got)
		}
	})
}

// TestPageAt20Services: a mesh of 20 services (a gateway, 4 services it
// calls, 3 backends each, 3 it reaches past them) is drawn with no two
// services' boxes overlapping, every edge drawn.
func TestPageAt20Services(t *testing.T) {
	var status api.StatusReport
	var stats api.StatsReport
	add := func(name string) {
		status.Instances = append(status.Instances, api.InstanceReport{ID: name + "-0", Service: name, Health: "passing", HealthSource: api.HealthFromScheduler})
	}
	call := func(from, to string, rps float64, failed uint64) {
		n := uint64(rps * 60)
		stats.Edges = append(stats.Edges, api.EdgeStats{Caller: from, Callee: to, Golden: api.Golden{
			Requests: n, Successes: n - failed, RPS: rps, SuccessRate: float64(n-failed) / float64(n), P99Ms: 12}})
	}
	add("gateway")
	for i := 0; i < 4; i++ {
		mid := fmt.Sprintf("mid-%d", i)
		add(mid)
		call("gateway", mid, 40, uint64(i*10))
		for j := 0; j < 3; j++ {
			leaf := fmt.Sprintf("backend-%d-%d", i, j)
			add(leaf)
			call(mid, leaf, 12, 0)
		}
	}
	for _, s := range []string{"audit", "search", "ledger"} {
		add(s)
		call("gateway", s, 3, 0) // past the middle layer
	}
	call("backend-0-0", "audit", 1, 0)
	call("backend-3-2", "ledger", 1, 0)
	st, _ := json.Marshal(status)
	sa, _ := json.Marshal(stats)
	s := newStubWith(t, st, sa, 0)
	page := dashboardtest.DumpDOM(t, s.URL+"/ui/#token="+token, budget)

	nodes := dashboardtest.Find(page, "node")
	if len(nodes) != 20 {
		t.Fatalf("%d services drawn, want 20", len(nodes))
	}
	if got := len(dashboardtest.Find(page, "edge")); got != len(stats.Edges) {
		t.Errorf("%d edges drawn, want %d", got, len(stats.Edges))
	}
	const w, h = 176, 54 // a service's box (app.js drawGraph: NW, NH)
	type box struct {
		name string
		x, y float64
	}
	var boxes []box
	for _, n := range nodes {
		var b box
		if _, err := fmt.Sscanf(n.Attr["transform"], "translate(%g %g)", &b.x, &b.y); err != nil {
			t.Fatalf("%s: transform %q: %v", n.Attr["data-service"], n.Attr["transform"], err)
		}
		b.name = n.Attr["data-service"]
		boxes = append(boxes, b)
	}
	for i, a := range boxes {
		for _, b := range boxes[i+1:] {
			if a.x < b.x+w && b.x < a.x+w && a.y < b.y+h && b.y < a.y+h {
				t.Errorf("%s at (%g, %g) overlaps %s at (%g, %g)", a.name, a.x, a.y, b.name, b.x, b.y)
			}
		}
	}
	file := filepath.Join(dashboardtest.ArtifactDir(t, "dashboard-20-services"), "dashboard.png")
	dashboardtest.Screenshot(t, s.URL+"/ui/#token="+token, file, budget)
	t.Logf("screenshot of 20 services: %s", file)
}
