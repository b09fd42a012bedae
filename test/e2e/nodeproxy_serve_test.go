package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// servedWorkloads: web and api on the local adapter's node proxy (api
// with apiN instances), store on a sidecar.
func servedWorkloads(apiN int) string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("web", app, `proxy_mode = "node"`, `env = { UPSTREAM_API = "http://${HOST}:9001", UPSTREAM_STORE = "http://${HOST}:9002" }`) +
		harness.Workload("api", app, `proxy_mode = "node"`, fmt.Sprintf("instances = %d", apiN), `env = { UPSTREAM_WEB = "http://${HOST}:9001", UPSTREAM_STORE = "http://${HOST}:9002" }`) +
		harness.Workload("store", app, `env = { UPSTREAM_API = "http://${HOST}:9001" }`)
}

// The local node proxy takes an instance that joins it and one that
// leaves it without restarting (issue 15; weft-proxy --serve-file): its
// pid stays, and a connection established through it before the change
// (web's keep-alive connection to api, over web's outbound listener and
// api's inbound, both in the node proxy) carries requests after each
// change. The new instance is served with its own identity.
func TestLocalNodeProxyTakesChangesWithoutRestarting(t *testing.T) {
	dir := t.TempDir()
	m := harness.StartLocalMesh(t, binDir, dir, nodePolicy, servedWorkloads(1), "127.0.133.2",
		"--adapter-option", "local.isolation=none", "--adapter-option", "local.node=node-a")
	ctl := m.Controller
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))
	nodePID := proxyPIDs(s)["web-0"]
	if nodePID == "" || proxyPIDs(s)["api-0"] != nodePID {
		t.Fatalf("proxy pids %v: want web-0 and api-0 on one node proxy", proxyPIDs(s))
	}

	// web's call to api through the node proxy, on one connection kept open.
	var conn net.Conn
	harness.Eventually(t, "web's outbound listener for api", 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Address("web"), "9001"), 5*time.Second)
		if err != nil {
			return err
		}
		if _, err := call(c); err != nil {
			c.Close()
			return err
		}
		conn = c
		return nil
	})
	t.Cleanup(func() { conn.Close() })
	br := bufio.NewReader(conn)
	again := func(when string) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: api\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: the connection web -> api opened before the change is gone: %v", when, err)
		}
		var a struct{ Service, Caller string }
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || a.Service != "api" || a.Caller != id("web") {
			t.Fatalf("%s: on the old connection: %d %+v (%v), want 200 from api seeing %s", when, resp.StatusCode, a, err, id("web"))
		}
	}
	again("before any change")

	// api-1 joins the node proxy.
	changed := time.Now()
	harness.ReplaceFile(t, filepath.Join(dir, "workloads.hcl"), servedWorkloads(2))
	s = ctl.WaitFor(t, "api-1 served", 60*time.Second, harness.Converged(4))
	t.Logf("api-1 served and acknowledged by the node proxy %s after the workloads file changed", time.Since(changed).Round(time.Millisecond))
	if got := proxyPIDs(s); got["api-1"] != nodePID || got["web-0"] != nodePID || got["api-0"] != nodePID {
		t.Fatalf("after api-1 joined: proxy pids %v, want every node-mode instance on the node proxy %s (not restarted)", got, nodePID)
	}
	again("after api-1 joined")
	var api1 string
	for _, in := range s.Instances {
		if in.ID == "api-1" {
			api1 = in.Address
		}
	}
	harness.Eventually(t, "api-1 through its own inbound", 30*time.Second, func() error {
		_, body, err := harness.Get(t.Context(), "http://"+net.JoinHostPort(api1, "8080")+"/call/web")
		if err != nil {
			return err
		}
		var a harness.DemoAnswer
		if err := json.Unmarshal([]byte(body), &a); err != nil || a.Status != 200 || a.Response.Caller != id("api") {
			return fmt.Errorf("api-1 -> web: %s", body)
		}
		return nil
	})

	// api-1 leaves it.
	changed = time.Now()
	harness.ReplaceFile(t, filepath.Join(dir, "workloads.hcl"), servedWorkloads(1))
	s = ctl.WaitFor(t, "api-1 gone", 60*time.Second, harness.Converged(3))
	t.Logf("api-1 gone from status %s after the workloads file changed", time.Since(changed).Round(time.Millisecond))
	if got := proxyPIDs(s); got["web-0"] != nodePID || got["api-0"] != nodePID {
		t.Fatalf("after api-1 left: proxy pids %v, want the node proxy %s (not restarted)", got, nodePID)
	}
	harness.Eventually(t, "api-1's mesh port closed", 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(api1, "15001"), time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("api-1's mesh port %s still takes connections", net.JoinHostPort(api1, "15001"))
		}
		return nil
	})
	again("after api-1 left")
}

// proxyPIDs are the instances' proxy pids, by instance ID.
func proxyPIDs(s *harness.Status) map[string]string {
	out := map[string]string{}
	for _, in := range s.Instances {
		out[in.ID] = in.Labels["proxy_pid"]
	}
	return out
}

// call sends GET / on c and reads the answer's status.
func call(c net.Conn) (int, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
	}
	return 200, nil
}
