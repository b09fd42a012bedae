package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
)

// tapPolicy: client may call web, but nothing under /admin; it also has an upstream to secret, which
// no intention lets it call (default deny).
const tapPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "client" {
  binding "local" { name = "client" }
  protocol = "http"
  upstream "web" { local_port = 9001 }
  upstream "secret" { local_port = 9003 }
}

service "web" {
  binding "local" { name = "web" }
  protocol = "http"
  route "health" {
    match {
      path_prefix = "/healthz"
    }
  }
}

service "secret" {
  binding "local" { name = "secret" }
  protocol = "http"
}

intention "client" "web" {
  permission {
    action = "deny"
    match {
      path_prefix = "/admin"
    }
  }
  permission {
    action = "allow"
    match {
      path_prefix = "/"
    }
  }
}
`

func tapWorkloads() string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("client", app) + harness.Workload("web", app) + harness.Workload("secret", app)
}

// tapMesh is a local mesh of client, web and secret on 127.0.102.x.
type tapMesh struct {
	ctl       *harness.Controller
	policyDir string
	client    string // the client instance's address
}

func startTapMesh(t *testing.T, firstAddr string, args ...string) *tapMesh {
	t.Helper()
	ctl, policyDir := startLocalMesh(t, tapPolicy, tapWorkloads(), firstAddr, args...)
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))
	return &tapMesh{ctl: ctl, policyDir: policyDir, client: s.Address("client")}
}

// call sends GET path through the client's sidecar to the upstream on port
// and returns the status.
func (m *tapMesh) call(t *testing.T, port, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := harness.Get(ctx, "http://"+net.JoinHostPort(m.client, port)+path)
	if err != nil {
		t.Fatalf("GET %s through the client's sidecar: %v", path, err)
	}
	if code == 0 {
		t.Fatalf("GET %s: no status: %s", path, body)
	}
	return code
}

// startWeft starts a weft command (against the mesh's controller) whose
// output the test reads as it comes.
func (m *tapMesh) startWeft(t *testing.T, name string, args ...string) *harness.Process {
	t.Helper()
	args = append(args, "--admin", m.ctl.URL(), "--data-dir", m.ctl.DataDir)
	cmd := exec.Command(filepath.Join(binDir, "weft"), args...)
	cmd.Env = harness.WithoutWeftEnv()
	return harness.Start(t, name, cmd, harness.Options{})
}

// waitLine waits until p's output has a line with every one of want, and
// returns it.
func waitLine(t *testing.T, p *harness.Process, what string, want ...string) string {
	t.Helper()
	var got string
	harness.Eventually(t, what, 30*time.Second, func() error {
		for _, l := range strings.Split(p.Out.String(), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				got = l
				return nil
			}
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited:\n%s", p.Name, p.Out.String())
		default:
		}
		return fmt.Errorf("no line with %q yet", want)
	})
	return got
}

// tapEvents decodes the JSON lines of a `weft tap --json` output.
func tapEvents(t *testing.T, out string) []api.TapEvent {
	t.Helper()
	var evs []api.TapEvent
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "{") {
			var ev api.TapEvent
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("a line of weft tap --json is not a TapEvent: %v\n%s", err, l)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// The proof: `weft tap` shows a call refused by intentions with
// its reason, and an allowed call with the caller's identity, the route,
// the status and the latency.
func TestTap(t *testing.T) {
	m := startTapMesh(t, "127.0.102.2")

	t.Run("a denied call appears with its reason", func(t *testing.T) {
		tap := m.startWeft(t, "weft tap secret", "tap", "secret", "--json", "--duration", "2m")
		waitLine(t, tap, "the tap to reach secret's sidecar", "tap started on sidecar secret")
		if code := m.call(t, "9003", "/private/%61dmin"); code != 403 {
			t.Fatalf("client -> secret answered %d, want 403 (no intention allows it)", code)
		}
		line := waitLine(t, tap, "the denied call in the tap", `"denied":`)
		var ev api.TapEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		t.Logf("weft tap: %s", line)
		if ev.Direction != "inbound" || ev.Caller != id("client") || ev.Callee != "secret" || ev.Status != 403 ||
			ev.Path != "/private/admin" || ev.Method != "GET" {
			t.Errorf("denied event = %+v, want inbound GET /private/admin from %s to secret, 403", ev, id("client"))
		}
		if !strings.Contains(ev.Denied, "client") || !strings.Contains(ev.Denied, "intention") {
			t.Errorf("the denial's reason %q does not say the caller and the missing intention", ev.Denied)
		}
	})

	t.Run("an allowed call appears with caller, route, status and latency", func(t *testing.T) {
		tap := m.startWeft(t, "weft tap web", "tap", "web", "--duration", "2m")
		waitLine(t, tap, "the tap to reach web's sidecar", "tap started on sidecar web")
		if code := m.call(t, "9001", "/"); code != 200 {
			t.Fatalf("client -> web answered %d, want 200", code)
		}
		line := waitLine(t, tap, "the allowed call in the tap", "inbound", "9001/ ", " 200 ")
		t.Logf("weft tap: %s", line)
		for _, want := range []string{"web-0", id("client") + " -> web", "GET", " 200 "} {
			if !strings.Contains(line, want) {
				t.Errorf("tap line %q lacks %q", line, want)
			}
		}
		if strings.Contains(line, "DENIED") {
			t.Errorf("an allowed call shows DENIED: %s", line)
		}
	})

	t.Run("the caller's side shows the route and the upstream instance", func(t *testing.T) {
		tap := m.startWeft(t, "weft tap client --to web", "tap", "client", "--to", "web", "--json", "--duration", "2m")
		waitLine(t, tap, "the tap to reach client's sidecar", "tap started on sidecar client")
		if code := m.call(t, "9001", "/healthz"); code != 200 {
			t.Fatalf("client -> web answered %d, want 200", code)
		}
		waitLine(t, tap, "the outbound call in the tap", `"path":"/healthz"`)
		var ev api.TapEvent
		for _, e := range tapEvents(t, tap.Out.String()) {
			if e.Path == "/healthz" {
				ev = e
			}
		}
		t.Logf("weft tap --json: %+v", ev)
		if ev.Direction != "outbound" || ev.Caller != id("client") || ev.Callee != "web" || ev.Status != 200 || ev.Route != "health" ||
			ev.Upstream == "" || ev.LatencyMs <= 0 || ev.Tries != 1 || ev.ResponseBytes <= 0 {
			t.Errorf("outbound event = %+v, want client -> web, 200, route health, with the upstream instance, latency, tries and bytes", ev)
		}
	})

	t.Run("filters and bounds", func(t *testing.T) {
		// A tap on a path web is never asked for sees nothing of /hello.
		tap := m.startWeft(t, "weft tap web --path /only", "tap", "web", "--path", "/only", "--json", "--duration", "2m")
		waitLine(t, tap, "the tap to reach web's sidecar", "tap started on sidecar web")
		m.call(t, "9001", "/hello")
		m.call(t, "9001", "/only/this")
		waitLine(t, tap, "the filtered call", `"path":"/only/this"`)
		for _, e := range tapEvents(t, tap.Out.String()) {
			if e.Type == "request" && !strings.HasPrefix(e.Path, "/only") {
				t.Errorf("a tap of --path /only saw %s", e.Path)
			}
		}
		// A short tap ends by itself and says so.
		short := m.startWeft(t, "weft tap web --duration 1s", "tap", "web", "--duration", "1s")
		select {
		case <-short.Exited():
		case <-time.After(30 * time.Second):
			t.Fatal("weft tap --duration 1s did not end within 30s")
		}
		if !strings.Contains(short.Out.String(), "tap ended: the tap's duration passed") {
			t.Errorf("a tap that ran its duration does not say so:\n%s", short.Out.String())
		}
		// Bad filters are refused with what to do.
		for _, args := range [][]string{
			{"tap", "web", "--max-rps", "0"},
			{"tap", "web", "--path", "no-slash"},
			{"tap", "web/../x"},
			{"tap", "web", "--duration", "1h"},
			{"tap", "web", "--from", "client", "--direction", "outbound"},
		} {
			_, stderr, code := m.ctl.RunWeft(t, filepath.Join(binDir, "weft"), args...)
			if code == 0 || !strings.Contains(stderr, "400 Bad Request") {
				t.Errorf("weft %v: exit %d, want a 400 refusal: %s", args, code, stderr)
			}
		}
	})
}

// `weft top --once` lists the path the test called most first, with its
// count, success and latencies, and counts the denied path as denied.
func TestTop(t *testing.T) {
	m := startTapMesh(t, "127.0.102.40")
	top := m.startWeft(t, "weft top web", "top", "web", "--once", "--duration", "10s")
	waitLine(t, top, "the tap to reach web's sidecar", "tap started on sidecar web-0")
	calls := []struct {
		path string
		n    int
		code int
	}{{"/", 7, 200}, {"/healthz", 3, 200}, {"/admin", 2, 403}}
	for _, c := range calls {
		for range c.n {
			if got := m.call(t, "9001", c.path); got != c.code {
				t.Fatalf("GET %s answered %d, want %d", c.path, got, c.code)
			}
		}
	}
	select {
	case <-top.Exited():
	case <-time.After(60 * time.Second):
		t.Fatal("weft top --once --duration 10s did not end within 60s")
	}
	out := top.Out.String()
	t.Logf("weft top --once:\n%s", out)
	var table []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "GET ") {
			table = append(table, strings.Join(strings.Fields(l), " "))
		}
	}
	if len(table) != 3 {
		t.Fatalf("weft top listed %d paths, want 3:\n%s", len(table), out)
	}
	for i, want := range []string{"GET / 7 100.0% 0 ", "GET /healthz 3 100.0% 0 ", "GET /admin 2 0.0% 2 "} {
		if !strings.HasPrefix(table[i], want) {
			t.Errorf("row %d is %q, want it to begin %q", i+1, table[i], want)
		}
	}
}
