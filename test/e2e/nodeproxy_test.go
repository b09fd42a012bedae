package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/test/harness"
)

// nodePolicy: web and api (served by the node proxy) call each other;
// web may call store (a sidecar), api may not; store calls api back; an
// L7 rule keeps web, and only web, from api's /headers.
const nodePolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" { local_port = 9001 }
  upstream "store" { local_port = 9002 }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  upstream "web" { local_port = 9001 }
  upstream "store" { local_port = 9002 }
}
service "store" {
  protocol = "http"
  binding "local" { name = "store" }
  upstream "api" { local_port = 9001 }
}

intention "web" "api" {
  permission {
    action = "deny"
    match { path_prefix = "/headers" }
  }
  permission {
    action = "allow"
    match { path_prefix = "/" }
  }
}
intention "web" "store" { action = "allow" }
intention "api" "web" { action = "allow" }
intention "store" "api" { action = "allow" }
`

func nodeWorkloads() string {
	app := filepath.Join(binDir, "weft-demo-app")
	node := `proxy_mode = "node"`
	return harness.Workload("web", app, node, `env = { UPSTREAM_API = "http://${HOST}:9001", UPSTREAM_STORE = "http://${HOST}:9002" }`) +
		harness.Workload("api", app, node, `env = { UPSTREAM_WEB = "http://${HOST}:9001", UPSTREAM_STORE = "http://${HOST}:9002" }`) +
		harness.Workload("store", app, `env = { UPSTREAM_API = "http://${HOST}:9001" }`)
}

// One node proxy serves web and api, each with its own identity and
// intentions, beside a sidecar-mode store: the callee sees the right
// SPIFFE ID both ways across the modes, api is refused what web is
// allowed, and an L7 permission holds for one caller of a node-mode
// instance and not another. The process count and resident memory of the proxies are
// printed.
func TestNodeProxyServesInstancesWithTheirOwnIdentity(t *testing.T) {
	ctl, _ := startLocalMesh(t, nodePolicy, nodeWorkloads(), "127.0.117.2", "--adapter-option", "local.node=node-a")
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))
	web, api, store := s.Address("web"), s.Address("api"), s.Address("store")

	// Who serves whom: the node-mode instances share one proxy process.
	pids := map[string]string{}
	for _, in := range s.Instances {
		pids[in.Service] = in.Labels["proxy_pid"]
		if in.Node != "node-a" {
			t.Errorf("weft status: %s is on node %q, want node-a", in.ID, in.Node)
		}
	}
	if pids["web"] == "" || pids["web"] != pids["api"] || pids["store"] == pids["web"] {
		t.Fatalf("proxy pids %v: want web and api on one node proxy, store on a sidecar of its own", pids)
	}

	for _, tc := range []struct {
		from, app, path string
		status          int    // the upstream's status the app saw
		callee, caller  string // the callee's service and the caller it was told
	}{
		{"web", web, "/call/api", 200, "api", id("web")},
		{"api", api, "/call/web", 200, "web", id("api")},
		{"web", web, "/call/store", 200, "store", id("web")},
		{"api", api, "/call/store", 403, "", ""}, // no intention api -> store
		{"store", store, "/call/api", 200, "api", id("store")},
		{"web", web, "/call/api/headers", 403, "", ""},     // web's permission on api denies it
		{"store", store, "/call/api/headers", 200, "", ""}, // store's intention has no permissions
	} {
		t.Run(tc.from+tc.path, func(t *testing.T) {
			// The demo app's answer to /call/...; the upstream's response
			// is the callee's JSON, or its refusal as text.
			var a struct {
				Status   int             `json:"status"`
				Response json.RawMessage `json:"response"`
			}
			var callee struct{ Service, Caller string }
			var body string
			harness.Eventually(t, tc.from+" calling "+tc.path, 30*time.Second, func() error {
				_, b, err := harness.Get(t.Context(), "http://"+net.JoinHostPort(tc.app, "8080")+tc.path)
				if err != nil {
					return err
				}
				body = b
				if err := json.Unmarshal([]byte(b), &a); err != nil {
					return fmt.Errorf("decoding %s: %w", b, err)
				}
				if a.Status == 503 || a.Status == 0 { // the callee is not in the caller's endpoints yet
					return fmt.Errorf("upstream status %d: %s", a.Status, b)
				}
				return nil
			})
			if a.Status != tc.status {
				t.Fatalf("%s %s: upstream status %d, want %d: %s", tc.from, tc.path, a.Status, tc.status, body)
			}
			if tc.status == 403 && !strings.Contains(body, "svc/"+tc.from+" may not ") {
				t.Errorf("%s %s: the refusal does not name %s as the caller: %s", tc.from, tc.path, tc.from, body)
			}
			if tc.status != 200 || tc.callee == "" {
				return
			}
			if err := json.Unmarshal(a.Response, &callee); err != nil {
				t.Fatalf("%s %s: decoding the callee's answer: %v: %s", tc.from, tc.path, err, body)
			}
			if callee.Service != tc.callee || callee.Caller != tc.caller {
				t.Errorf("%s %s: callee %s saw caller %q, want %s seeing %q", tc.from, tc.path, callee.Service, callee.Caller, tc.callee, tc.caller)
			}
		})
	}

	// Per-instance metrics: each instance's admin address serves its own
	// proxy's series, with its own identity.
	for _, svc := range []string{"web", "api"} {
		_, body, err := harness.Get(t.Context(), "http://"+net.JoinHostPort(s.Address(svc), "15000")+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(body, `service="`+svc+`"`) {
			t.Errorf("%s's admin /metrics does not name service %q:\n%.2000s", svc, svc, body)
		}
	}

	t.Run("a node proxy of another node", func(t *testing.T) { otherNodeRefused(t, ctl) })

	node, sidecar := rssKiB(t, pids["web"]), rssKiB(t, pids["store"])
	t.Logf("proxy processes: 2 for 3 instances (1 node proxy for web and api, 1 sidecar for store); RSS: node proxy %d KiB for 2 instances, sidecar %d KiB for 1", node, sidecar)
}

// rssKiB is the resident set of process pid, from /proc.
func rssKiB(t testing.TB, pid string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("reading the proxy's memory: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("reading VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%s/status", pid)
	return 0
}

// otherNodeRefused: a compromised node proxy of node-b (its node token
// from the admin API, as a launcher would get it) asks for web-0, which
// the local adapter placed on node-a: the controller refuses it, at the
// Join RPC and when a real weft-proxy --node tries. A token of node-a
// admits node-a's instance.
func otherNodeRefused(t *testing.T, ctl *harness.Controller) {
	nodeToken := func(node string) string {
		var out struct{ Token string }
		if err := ctl.Call("POST", "/v1/join-tokens", map[string]any{"adapter": "local", "node": node, "ttl_seconds": 60}, &out); err != nil || !strings.HasPrefix(out.Token, "wj1.") {
			t.Fatalf("node token for %s: %v %+v", node, err, out)
		}
		return out.Token
	}
	mc := meshClient(t, ctl)
	join := func(instance, token string) (*meshapi.Credentials, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return mc.Join(ctx, &meshapi.JoinRequest{InstanceId: instance, JoinToken: token, CsrDer: newCSR(t)})
	}
	nodeB := nodeToken("node-b")
	if _, err := join("web-0", nodeB); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `placed it on node "node-a"`) {
		t.Errorf("node-b's token for web-0: %v, want PermissionDenied, placed on node-a", err)
	}
	if creds, err := join("api-0", nodeToken("node-a")); err != nil || creds.SpiffeId != id("api") {
		t.Errorf("node-a's token for api-0: %v, %v; want %s", creds, err, id("api"))
	}

	// The real process: it serves nothing and says why.
	cmd := exec.Command(filepath.Join(binDir, "weft-proxy"), "--node", "node-b",
		"--serve", "web-0=127.0.117.250:15000", "--controller", ctl.Listen,
		"--trust-bundle", ctl.WaitCACert(t), "--data-dir", t.TempDir())
	cmd.Env = append(harness.WithoutWeftEnv(), "WEFT_NODE_TOKEN="+nodeB)
	p := harness.Start(t, "node-b proxy", cmd, harness.Options{})
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("node-b's proxy still runs after 30s:\n%s", p.Out.String())
	}
	if out := p.Out.String(); !strings.Contains(out, `the node proxy of node "node-b" may not serve instance "web-0": its scheduler placed it on node "node-a"`) {
		t.Errorf("node-b's proxy does not say it was refused web-0:\n%s", out)
	}
}

// sharedWorkloads: web on the node proxy, api (two instances) on its
// application proxy, store on a sidecar.
func sharedWorkloads() string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("web", app, `proxy_mode = "node"`, `env = { UPSTREAM_API = "http://${HOST}:9001", UPSTREAM_STORE = "http://${HOST}:9002" }`) +
		harness.Workload("api", app, `proxy_mode = "application"`, `instances = 2`, `env = { UPSTREAM_WEB = "http://${HOST}:9001", UPSTREAM_STORE = "http://${HOST}:9002" }`) +
		harness.Workload("store", app, `env = { UPSTREAM_API = "http://${HOST}:9001" }`)
}

// The guard with the three models side by side: web on the node proxy,
// api's two instances on one application proxy, store on its sidecar.
// Every instance is guarded: no app port takes a connection from this
// test; each app reaches its own proxy's outbound listeners and calls go
// through with the caller's identity across the models. The application
// proxy's group reaches its own application's apps (both api instances)
// and no other app (web's, store's); the node proxy's group reaches web's
// app and not api's.
func TestSharedProxiesBehindTheGuard(t *testing.T) {
	nft := nftBinary(t)
	ctl := harness.StartLocalMesh(t, binDir, t.TempDir(), nodePolicy, sharedWorkloads(), "127.0.117.40", "--adapter-option", "local.node=node-a").Controller
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(4))
	for _, a := range s.Adapters {
		table := fmt.Sprintf("weft_local_%d", a.Pid)
		t.Cleanup(func() { _ = exec.Command(nft, "delete", "table", "inet", table).Run() })
	}
	s = ctl.WaitFor(t, "every instance guarded", 30*time.Second, func(s *harness.Status) bool {
		for _, in := range s.Instances {
			if in.Isolation != "guard" {
				return false
			}
		}
		return len(s.Instances) == 4
	})
	addr, proxyPID := map[string]string{}, map[string]string{}
	for _, in := range s.Instances {
		addr[in.ID], proxyPID[in.ID] = in.Address, in.Labels["proxy_pid"]
	}
	if proxyPID["api-0"] != proxyPID["api-1"] || proxyPID["api-0"] == proxyPID["web-0"] || proxyPID["api-0"] == proxyPID["store-0"] || proxyPID["web-0"] == proxyPID["store-0"] {
		t.Fatalf("proxy pids %v: want api-0 and api-1 on one application proxy, web-0 on the node proxy, store-0 on its sidecar", proxyPID)
	}
	appURL := func(id string) string { return "http://" + net.JoinHostPort(addr[id], "8080") + "/" }

	t.Run("no app port takes a connection from another process", func(t *testing.T) {
		for _, id := range []string{"web-0", "api-0", "api-1", "store-0"} {
			if err := dialRefused(net.JoinHostPort(addr[id], "8080")); err != nil {
				t.Error(err)
			}
		}
	})

	// Each app calls through its own proxy's outbound listeners (the
	// test runs the call as the app's group, which the guard lets reach
	// its own app).
	for _, tc := range []struct{ from, path, callee, caller string }{
		{"web-0", "/call/store", "store", id("web")},
		{"web-0", "/call/api", "api", id("web")},
		{"api-1", "/call/web", "web", id("api")},
		{"store-0", "/call/api", "api", id("store")},
	} {
		t.Run(tc.from+tc.path, func(t *testing.T) {
			var last string
			harness.Eventually(t, tc.from+" calling "+tc.path, 30*time.Second, func() error {
				got, err := fetchAs(t, appGID(t, addr[tc.from]), "http://"+net.JoinHostPort(addr[tc.from], "8080")+tc.path)
				if err != nil {
					return err
				}
				last = got
				code, body, _ := strings.Cut(got, " ")
				var a harness.DemoAnswer
				if err := json.Unmarshal([]byte(body), &a); err != nil || code != "200" || a.Status != 200 {
					return fmt.Errorf("answer %q", got)
				}
				if a.Response.Service != tc.callee || a.Response.Caller != tc.caller {
					return fmt.Errorf("%s saw caller %q, want %s at %s", a.Response.Service, a.Response.Caller, tc.caller, tc.callee)
				}
				return nil
			})
			t.Logf("%s%s: %s", tc.from, tc.path, last)
		})
	}

	t.Run("a shared proxy's group reaches the apps it serves and no other", func(t *testing.T) {
		appProxy, nodeProxy := procGID(t, proxyPID["api-0"]), procGID(t, proxyPID["web-0"])
		for _, tc := range []struct {
			proxy string
			gid   uint32
			app   string
			ok    bool
		}{
			{"api's application proxy", appProxy, "api-0", true},
			{"api's application proxy", appProxy, "api-1", true},
			{"api's application proxy", appProxy, "web-0", false},
			{"api's application proxy", appProxy, "store-0", false},
			{"the node proxy", nodeProxy, "web-0", true},
			{"the node proxy", nodeProxy, "api-1", false},
		} {
			got, err := fetchAs(t, tc.gid, appURL(tc.app))
			switch {
			case tc.ok && (err != nil || !strings.HasPrefix(got, "200 ")):
				t.Errorf("%s (gid %d) could not reach %s's app: %q, %v", tc.proxy, tc.gid, tc.app, got, err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "refused")):
				t.Errorf("%s (gid %d) reached %s's app: %q, %v; want connection refused", tc.proxy, tc.gid, tc.app, got, err)
			}
		}
	})

	// The apps run as the adapter's own user, kept apart by group: a
	// shared proxy's ports in a SO_REUSEPORT group would let any of them
	// (or this test, the same user) listen beside it and take a share of
	// its connections. The adapter starts its shared proxies with
	// --reuse-port=false.
	t.Run("no process of the same user listens beside a shared proxy", func(t *testing.T) {
		mesh := map[string]int{}
		for _, in := range s.Instances {
			mesh[in.ID] = in.Ports["mesh"]
		}
		for _, tc := range []struct{ what, addr string }{
			{"the node proxy's mesh port for web-0", net.JoinHostPort(addr["web-0"], strconv.Itoa(mesh["web-0"]))},
			{"the node proxy's upstream port of web-0", net.JoinHostPort(addr["web-0"], "9001")},
			{"the application proxy's mesh port for api-0", net.JoinHostPort(addr["api-0"], strconv.Itoa(mesh["api-0"]))},
			{"the application proxy's upstream port of api-1", net.JoinHostPort(addr["api-1"], "9001")},
		} {
			ln, err := proxy.Listen(t.Context(), tc.addr, true)
			if err == nil {
				ln.Close()
				t.Errorf("%s (%s): this process listened beside the proxy with SO_REUSEPORT; want address already in use", tc.what, tc.addr)
			} else if !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("%s (%s): %v, want address already in use", tc.what, tc.addr, err)
			}
		}
	})

	t.Run("an application proxy is refused another application's certificate", func(t *testing.T) {
		applicationRefused(t, ctl)
	})
}

// applicationRefused: a compromised application proxy of api on node-a
// (its application token from the admin API, as a launcher would get it)
// asks for web-0, on the same node: the controller refuses it, at the Join
// RPC and when a real weft-proxy tries. Its node's token would admit web-0
// (the same node): what refuses it is the token's application scope.
func applicationRefused(t *testing.T, ctl *harness.Controller) {
	var out struct{ Token string }
	if err := ctl.Call("POST", "/v1/join-tokens", map[string]any{"adapter": "local", "node": "node-a", "service": "api", "ttl_seconds": 60}, &out); err != nil || !strings.HasPrefix(out.Token, "wj1.") {
		t.Fatalf("application token for api on node-a: %v %+v", err, out)
	}
	apiToken := out.Token
	mc := meshClient(t, ctl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, inst := range []string{"web-0", "store-0"} {
		_, err := mc.Join(ctx, &meshapi.JoinRequest{InstanceId: inst, JoinToken: apiToken, CsrDer: newCSR(t)})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `the proxy of application default/api on node "node-a" may not serve instance "`+inst+`"`) {
			t.Errorf("api's application token for %s: %v, want PermissionDenied naming the application", inst, err)
		}
	}

	// The real process: it serves nothing and says why.
	cmd := exec.Command(filepath.Join(binDir, "weft-proxy"), "--node", "node-a",
		"--serve", "web-0=127.0.117.250:15000", "--controller", ctl.Listen,
		"--trust-bundle", ctl.WaitCACert(t), "--data-dir", t.TempDir())
	cmd.Env = append(harness.WithoutWeftEnv(), "WEFT_NODE_TOKEN="+apiToken)
	p := harness.Start(t, "api's application proxy asking for web-0", cmd, harness.Options{})
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("the application proxy still runs after 30s:\n%s", p.Out.String())
	}
	if out := p.Out.String(); !strings.Contains(out, `may not serve instance "web-0": it is an instance of default/web`) {
		t.Errorf("the application proxy does not say it was refused web-0:\n%s", out)
	}
}

// procGID returns the effective group of process pid.
func procGID(t *testing.T, pid string) uint32 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Gid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 1 {
				g, err := strconv.ParseUint(f[1], 10, 32)
				if err == nil {
					return uint32(g)
				}
			}
		}
	}
	t.Fatalf("no Gid in /proc/%s/status", pid)
	return 0
}
