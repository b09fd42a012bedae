package dashboard

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/dashboard/dashboardtest"
	"github.com/weftmesh/weft/test/harness"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.MeshBinaries(nil), func(dir string) error { binDir = dir; return nil }))
}

// client may call web; client -> secret has no intention: refused.
const policy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "web" { local_port = 9001 }
  upstream "secret" { local_port = 9003 }
}

service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}

service "secret" {
  protocol = "http"
  binding "local" { name = "secret" }
}

intention "client" "web" { action = "allow" }
`

const (
	sent   = 40 // client -> web, each answered 200
	denied = 6  // client -> secret, each refused 403
)

// budget is the virtual time the page gets to fetch and draw, less than
// its 5 s refresh.
const budget = 3 * time.Second

func TestDashboardShowsTraffic(t *testing.T) {
	// Sidecars the local adapter starts inherit this: reports every
	// 500 ms rather than every 10 s, so the page's figures come quickly.
	t.Setenv("WEFT_REPORT_INTERVAL", "500ms")
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("client", app) + harness.Workload("web", app) + harness.Workload("secret", app)
	ctl := harness.StartLocalMesh(t, binDir, t.TempDir(), policy, workloads, "127.0.105.2",
		"--adapter-option", "local.isolation=none").Controller
	st := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))

	var before api.StatsReport
	if err := ctl.Call("GET", "/v1/stats", nil, &before); err != nil {
		t.Fatalf("reading /v1/stats: %v", err)
	}
	if edge(&before, "client", "web") != nil {
		t.Fatalf("client -> web has traffic before the test sent any: %+v", edge(&before, "client", "web"))
	}
	dashboardtest.Binary(t) // fail now, with how to install it, rather than after the traffic

	tok, err := api.ReadToken(ctl.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	page := ctl.URL() + "/ui/#token=" + tok

	// Before: the page draws the services, and no edge from client to web.
	dom := dashboardtest.DumpDOM(t, page, budget)
	if s := dashboardtest.Find(dom, "state"); len(s) != 1 || s[0].Attr["data-state"] != "ok" {
		t.Fatalf("the page before traffic:%s, want state ok", dashboardtest.Sprint(s))
	}
	for _, svc := range []string{"client", "web", "secret"} {
		if len(dashboardtest.FindWhere(dom, "node", "data-service", svc)) != 1 {
			t.Errorf("the graph does not show the idle service %s before traffic:%s", svc, dashboardtest.Sprint(dashboardtest.Find(dom, "node")))
		}
	}
	if e := dashboardtest.FindWhere(dom, "edge", "data-caller", "client", "data-callee", "web"); len(e) != 0 {
		t.Fatalf("the page shows client -> web before any traffic:%s", dashboardtest.Sprint(e))
	}

	// The traffic: through the client's sidecar, as its app would.
	client := st.Address("client")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < sent; i++ {
		code, body, err := harness.Get(ctx, "http://"+net.JoinHostPort(client, "9001")+"/")
		if err != nil || code != http.StatusOK {
			t.Fatalf("client -> web #%d: %d %q %v", i, code, body, err)
		}
	}
	for i := 0; i < denied; i++ {
		code, body, err := harness.Get(ctx, "http://"+net.JoinHostPort(client, "9003")+"/")
		if err != nil || code != http.StatusForbidden {
			t.Fatalf("client -> secret #%d: %d %q %v, want 403", i, code, body, err)
		}
	}

	// The sidecars report every 10 s: wait until the controller has all of it.
	var stats api.StatsReport
	harness.Eventually(t, "the controller to count the traffic", 90*time.Second, func() error {
		stats = api.StatsReport{}
		if err := ctl.Call("GET", "/v1/stats", nil, &stats); err != nil {
			return err
		}
		web, sec := edge(&stats, "client", "web"), edge(&stats, "client", "secret")
		switch {
		case web == nil || web.Golden.Requests < sent:
			return fmt.Errorf("client -> web: %+v, want %d requests", web, sent)
		case sec == nil || sec.Golden.Denied < denied:
			return fmt.Errorf("client -> secret: %+v, want %d denied", sec, denied)
		}
		return nil
	})
	if got := edge(&stats, "client", "web").Golden.Requests; got != sent {
		t.Errorf("/v1/stats counts %d requests client -> web, the test sent %d", got, sent)
	}

	dom = dashboardtest.DumpDOM(t, page, budget)
	t.Run("the new edge, with the request count sent", func(t *testing.T) {
		e := dashboardtest.FindWhere(dom, "edge", "data-caller", "client", "data-callee", "web")
		if len(e) != 1 || e[0].Attr["data-requests"] != strconv.Itoa(sent) || e[0].Attr["data-denied"] != "0" {
			t.Errorf("the graph's client -> web:%s, want %d requests, none denied", dashboardtest.Sprint(e), sent)
		}
		f := dashboardtest.FindWhere(dom, "flow", "data-caller", "client", "data-callee", "web")
		if len(f) != 1 || !strings.Contains(f[0].Text, "allowed") || !strings.Contains(f[0].Text, " "+strconv.Itoa(sent)+" ") {
			t.Errorf("the flows' client -> web:%s, want allowed with %d requests", dashboardtest.Sprint(f), sent)
		}
		w := dashboardtest.FindWhere(dom, "service", "data-service", "web")
		if len(w) != 1 || w[0].Attr["data-requests"] != strconv.Itoa(sent) || !strings.Contains(w[0].Text, "100%") {
			t.Errorf("the web service:%s, want %d requests, 100%% success", dashboardtest.Sprint(w), sent)
		}
	})
	t.Run("the denied flow it caused", func(t *testing.T) {
		want := strconv.FormatUint(edge(&stats, "client", "secret").Golden.Denied, 10)
		d := dashboardtest.FindWhere(dom, "denied-flow", "data-caller", "client", "data-callee", "secret")
		if len(d) != 1 || d[0].Attr["data-denied"] != want || !strings.Contains(d[0].Text, "denied") {
			t.Errorf("the denied flows:%s, want client -> secret with %s denied", dashboardtest.Sprint(dashboardtest.Find(dom, "denied-flow")), want)
		}
		e := dashboardtest.FindWhere(dom, "edge", "data-caller", "client", "data-callee", "secret")
		if len(e) != 1 || e[0].Attr["data-denied"] != want || !strings.Contains(e[0].Attr["class"], "denied") {
			t.Errorf("the graph's client -> secret:%s, want drawn denied", dashboardtest.Sprint(e))
		}
		var n int
		for _, d := range stats.RecentDenials {
			if d.Callee == "secret" {
				n++
			}
		}
		r := dashboardtest.FindWhere(dom, "denial", "data-callee", "secret")
		if n == 0 || len(r) != 1 || r[0].Attr["data-count"] != strconv.Itoa(n) || !strings.Contains(r[0].Text, "client") {
			t.Errorf("the recent denials:%s, want client's %d calls to secret in one row", dashboardtest.Sprint(dashboardtest.Find(dom, "denial")), n)
		}
	})
	t.Run("instances and sidecars", func(t *testing.T) {
		if n := len(dashboardtest.Find(dom, "instance")); n != 3 {
			t.Errorf("%d instances, want 3", n)
		}
		if s := dashboardtest.FindWhere(dom, "sidecar", "data-acked", "true"); len(s) != 3 {
			t.Errorf("%d sidecars shown ACKed, want 3:%s", len(s), dashboardtest.Sprint(dashboardtest.Find(dom, "sidecar")))
		}
		if r := dashboardtest.Find(dom, "root"); len(r) != 1 || !strings.Contains(r[0].Text, "active") {
			t.Errorf("roots:%s, want one active", dashboardtest.Sprint(r))
		}
	})

	shot := filepath.Join(dashboardtest.ArtifactDir(t, "dashboard-e2e"), "dashboard.png")
	dashboardtest.Screenshot(t, page, shot, budget)
	t.Logf("the dashboard with this test's traffic: %s", shot)
	if os.Getenv("WEFT_UPDATE_SCREENSHOT") == "1" {
		root, err := harness.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		harness.WriteFile(t, filepath.Join(root, "docs", "dashboard.png"), string(b))
	}
}

func edge(s *api.StatsReport, caller, callee string) *api.EdgeStats {
	for i := range s.Edges {
		if s.Edges[i].Caller == caller && s.Edges[i].Callee == callee {
			return &s.Edges[i]
		}
	}
	return nil
}
