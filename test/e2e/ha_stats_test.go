package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
)

// haStatsPolicy: client calls web; web's two instances share one global
// limit of 100 requests a second.
const haStatsPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}
service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "web" { local_port = 9001 }
}
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  rate_limit "all" {
    requests_per_second = 100
    burst               = 10
    scope               = "global"
  }
}
intention "client" "web" { action = "allow" }
`

// globalShare reads a sidecar's weft_rate_limit_global_share for limit
// from its admin /metrics.
func globalShare(admin, limit string) (float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	prefix := `weft_rate_limit_global_share{limit="` + limit + `"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s", admin, strings.TrimSpace(prefix))
}

// TestRaftStatsAndBudgetsFromAnyReplica: with the sidecars of one
// service on two different replicas, every replica answers GET /v1/stats
// with every request (each replica passes its sidecars' reports on to the
// others, core/relay), and the global limit is divided between both
// instances (each replica's budget pool knows the other's members), not
// granted whole to each.
func TestRaftStatsAndBudgetsFromAnyReplica(t *testing.T) {
	app := filepath.Join(binDir, "weft-demo-app")
	c := startHACluster(t, 120, haStatsPolicy, harness.Workload("client", app)+harness.Workload("web", app, "instances = 2"), 3,
		"WEFT_REPORT_INTERVAL=1s")
	on := c.spread([]string{"client-0", "web-0", "web-1"}, "web-0 and web-1 on different replicas", func(on map[string]int) bool {
		return on["web-0"] != on["web-1"]
	})
	st, err := c.Ctls[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	admin := func(id string) string {
		for _, in := range st.Instances {
			if in.ID == id {
				return net.JoinHostPort(in.Address, "15000")
			}
		}
		t.Fatalf("no instance %s", id)
		return ""
	}

	// Budgets: each web sidecar holds half of the limit (both idle), not
	// all of it.
	start := time.Now()
	var shares [2]float64
	took := harness.Eventually(t, "each web sidecar to hold half of the global limit", 10*time.Second, func() error {
		for i, id := range []string{"web-0", "web-1"} {
			v, err := globalShare(admin(id), "all")
			if err != nil {
				return err
			}
			shares[i] = v
		}
		if shares[0]+shares[1] > 100.5 || math.Abs(shares[0]-50) > 5 || math.Abs(shares[1]-50) > 5 {
			return fmt.Errorf("shares %.1f (web-0, on replica %d) and %.1f (web-1, on replica %d)", shares[0], on["web-0"], shares[1], on["web-1"])
		}
		return nil
	})
	t.Logf("global limit 100/s: web-0 (replica %d) holds %.1f/s and web-1 (replica %d) %.1f/s, %s after the sidecars settled (bound 10s; waited %s)",
		on["web-0"], shares[0], on["web-1"], shares[1], time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))

	// Stats: 200 calls through the client, 40 a second (under the limit);
	// every replica counts all of them, though each web sidecar reported
	// to its own replica.
	const calls = 200
	took = c.passing([]string{"client-0", "web-0", "web-1"}, 30*time.Second)
	t.Logf("every replica sees client-0, web-0 and web-1 passing, their configs ACKed (bound 30s; waited %s)", took.Round(time.Millisecond))
	url := "http://" + net.JoinHostPort(st.Address("client"), "9001") + "/"
	cl := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for i := range calls {
		<-tick.C
		resp, err := cl.Get(url)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("call %d: %s: %s", i, resp.Status, body)
		}
	}
	sent := time.Now()
	for i, ctl := range c.Ctls {
		took := harness.Eventually(t, fmt.Sprintf("replica %d to count every call", i), 15*time.Second, func() error {
			var r api.StatsReport
			if err := ctl.Call("GET", "/v1/stats?window=10m", nil, &r); err != nil {
				return err
			}
			var web, edge, reporting uint64
			for _, s := range r.Services {
				if s.Service == "web" {
					web = s.Golden.Requests
				}
			}
			for _, e := range r.Edges {
				if e.Caller == "client" && e.Callee == "web" {
					edge = e.Golden.Requests
				}
			}
			reporting = uint64(r.ReportingSidecars)
			if web != calls || edge != calls || reporting != 3 {
				return fmt.Errorf("service web %d requests, edge client -> web %d, %d reporting sidecars; want %d, %d, 3", web, edge, reporting, calls, calls)
			}
			return nil
		})
		t.Logf("replica %d counts all %d calls and 3 reporting sidecars %s after the last call (bound 15s; waited %s)", i, calls, time.Since(sent).Round(time.Millisecond), took.Round(time.Millisecond))
	}
	// weft stat, through any replica, has both web instances reporting.
	for i, ctl := range c.Ctls {
		out, _, code := ctl.RunWeft(t, filepath.Join(binDir, "weft"), "stat", "web", "--window", "10m")
		if code != 0 || !strings.Contains(out, "2/2") {
			t.Errorf("weft stat web through replica %d: exit %d, want both instances (2/2) meshed:\n%s", i, code, out)
		}
		if i == 0 {
			t.Logf("weft stat web --window 10m, through replica 0:\n%s", out)
		}
	}
}
