package local

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

func TestInfo(t *testing.T) {
	info, err := New().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "local" || info.ProtocolVersion != sdk.ProtocolVersion ||
		!info.Has(sdk.CapRunsInstances) || !info.Has(sdk.CapJoinTokens) {
		t.Errorf("Info = %+v", info)
	}
}

// A whole life: start, serve, crash and restart, stop.
func TestRunInstances(t *testing.T) {
	// What go-plugin sets for a plugin is not passed on.
	t.Setenv("WEFT_PLUGIN", "cookie")
	t.Setenv("PLUGIN_MIN_PORT", "10000")
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 2, "web": 1}, "")
	a := newTestAdapter(t)
	sdktest.ConfigureOK(t, a, s.request(t))
	events := watch(t, a)

	ev := sdktest.WaitFor(t, events, "every instance passing", waitTimeout, allPassing("api-0", "api-1", "web-0"))
	wantAddr := map[string]string{"api-0": s.prefix + "2", "api-1": s.prefix + "3", "web-0": s.prefix + "4"}
	for _, in := range ev.Snapshot.Instances {
		if err := in.Validate(); err != nil {
			t.Errorf("invalid instance: %v", err)
		}
		if in.Address != wantAddr[in.ID] {
			t.Errorf("%s: address %s, want %s", in.ID, in.Address, wantAddr[in.ID])
		}
		wantPorts := map[string]int{"app": s.port, "mesh": 15001, "admin": 15000}
		if !reflect.DeepEqual(in.Ports, wantPorts) || in.Meta["version"] != "v1" || in.Namespace != "default" ||
			in.Labels["workloads_file"] != s.file {
			t.Errorf("%s: %+v", in.ID, in)
		}
	}
	if ev.Snapshot.Adapter != "local" {
		t.Errorf("snapshot of adapter %q", ev.Snapshot.Adapter)
	}

	// The app got its address, port, identity and the file's env, with
	// ${HOST} expanded; it runs in the workloads file's directory.
	s.waitReady(t, "api-1", 1)
	info := getAppInfo(t, s.prefix+"3", s.port)
	wantEnv := map[string]string{
		"HOST": s.prefix + "3", "PORT": strconv.Itoa(s.port), "WEFT_SERVICE": "api", "WEFT_INSTANCE": "api-1",
		"WEFT_NAMESPACE": "default", "TEST_UPSTREAM": "http://" + s.prefix + "3:9001", "TEST_READY": s.readySocket(),
	}
	if !reflect.DeepEqual(info.Env, wantEnv) || info.Dir != s.dir {
		t.Errorf("app api-1 started with env %v in %s, want %v in %s", info.Env, info.Dir, wantEnv, s.dir)
	}

	// The sidecar got a join token for its instance in its environment,
	// never on its command line, and listens on the instance's admin port.
	p := pids(ev)
	proxyPID, _ := strconv.Atoi(p["web-0"][1])
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(proxyPID) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := strings.Join([]string{testBinary(t), "--instance", "web-0", "--controller", "127.0.0.1:1", "--controller", "127.0.0.1:2",
		"--trust-bundle", filepath.Join(s.dataDir, "trust-bundle.pem"), "--admin", s.prefix + "4:15000",
		"--data-dir", filepath.Join(s.dataDir, "proxy", "web-0")}, "\x00") + "\x00"
	if string(cmdline) != wantArgs {
		t.Errorf("sidecar command line\n %q\nwant\n %q", cmdline, wantArgs)
	}
	s.waitReady(t, "proxy:web-0", 1)
	tokens := readTokens(t, s, "web-0")
	if len(tokens) != 1 {
		t.Fatalf("sidecar web-0 recorded %d join tokens, want 1", len(tokens))
	}
	checkToken(t, tokens[0], "web-0", "web")
	if strings.Contains(string(cmdline), tokens[0]) {
		t.Error("join token on the sidecar's command line")
	}
	if c, err := net.DialTimeout("tcp", s.prefix+"4:15000", 5*time.Second); err != nil {
		t.Errorf("sidecar admin port: %v", err)
	} else {
		c.Close()
	}
	for _, f := range []string{"logs/web-0.app.log", "logs/web-0.proxy.log", "trust-bundle.pem", "local-state.json"} {
		if _, err := os.Stat(filepath.Join(s.dataDir, f)); err != nil {
			t.Errorf("data directory: %v", err)
		}
	}

	// The state file records every instance and its pids.
	st, err := readState(filepath.Join(s.dataDir, "local-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	for id, pp := range p {
		e := st[id]
		if strconv.Itoa(e.App.PID) != pp[0] || strconv.Itoa(e.Proxy.PID) != pp[1] || e.Address != wantAddr[id] {
			t.Errorf("state of %s: %+v, want pids %v at %s", id, e, pp, wantAddr[id])
		}
	}

	// A crashed app is restarted: new pid, critical meanwhile, then passing.
	killPID(t, p["api-0"][0])
	ev = sdktest.WaitFor(t, events, "api-0 restarted", waitTimeout, func(ev sdk.WatchEvent) bool {
		q := pids(ev)["api-0"]
		return allPassing("api-0", "api-1", "web-0")(ev) && q[0] != p["api-0"][0]
	})
	if q := pids(ev); q["api-0"][1] != p["api-0"][1] || q["api-1"] != p["api-1"] {
		t.Errorf("restarting api-0's app touched other processes: %v -> %v", p, q)
	}

	// A crashed sidecar is restarted with a fresh join token.
	killPID(t, p["web-0"][1])
	ev = sdktest.WaitFor(t, events, "web-0's sidecar restarted", waitTimeout, func(ev sdk.WatchEvent) bool {
		q := pids(ev)["web-0"]
		return q[1] != "" && q[1] != p["web-0"][1]
	})
	s.waitReady(t, "proxy:web-0", 2)
	tokens = readTokens(t, s, "web-0")
	if len(tokens) != 2 || tokens[0] == tokens[1] {
		t.Errorf("restarted sidecar's tokens: %q, want two different ones", tokens)
	} else {
		checkToken(t, tokens[1], "web-0", "web")
	}

	// Close stops everything and removes the state file.
	all := allPIDs(pids(ev))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range all {
		if alive(pid) {
			t.Errorf("pid %d still running after Close", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "local-state.json")); !os.IsNotExist(err) {
		t.Errorf("state file after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The processes outlive the adapter's host; a new adapter over the same
// data directory adopts those that run what it would run instead of
// starting duplicates, replaces those that run something else, and stops
// those of instances no longer declared.
func TestAdoptAfterHostDeath(t *testing.T) {
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 2, "web": 1, "old": 1}, "")
	req, err := json.Marshal(s.request(t))
	if err != nil {
		t.Fatal(err)
	}

	// The first adapter runs in a host process that dies.
	host := exec.Command(testBinary(t))
	host.Env = append(os.Environ(), roleEnv+"=host", reqEnv+"="+string(req))
	host.Stderr = testWriter{t}
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan sdk.WatchEvent)
	stopReading := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var snap model.Snapshot
			if json.Unmarshal(sc.Bytes(), &snap) == nil {
				select {
				case events <- sdk.WatchEvent{Snapshot: snap}:
				case <-stopReading:
					return
				}
			}
		}
	}()
	ev := sdktest.WaitFor(t, events, "the host's instances passing", waitTimeout, allPassing("api-0", "api-1", "old-0", "web-0"))
	before := pids(ev)
	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	close(stopReading)
	_ = host.Wait()
	t.Cleanup(func() {
		for _, pid := range allPIDs(before) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	for _, pid := range allPIDs(before) {
		if !alive(pid) {
			t.Fatalf("pid %d died with the adapter's host", pid)
		}
	}

	// The second adapter: "old" is no longer declared, and web's app now
	// runs with another environment.
	s.writeWorkloads(t, map[string]int{"api": 2, "web": 1}, "")
	text := mustRead(t, s.file)
	i := strings.Index(text, "service \"web\" {")
	j := i + strings.Index(text[i:], "\n}\n")
	text = text[:i] + strings.Replace(text[i:j], ":9001", ":9009", 1) + text[j:]
	if err := os.WriteFile(s.file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newTestAdapter(t)
	sdktest.ConfigureOK(t, a, s.request(t)) // no "Port in use": the ports are held by our own processes
	events2 := watch(t, a)
	// An adopted instance is passing from the new adapter's first
	// snapshot on: were it critical even once, every caller would drop a
	// live instance for a moment after an adapter or controller restart.
	select {
	case first := <-events2:
		for _, in := range first.Snapshot.Instances {
			if (in.ID == "api-0" || in.ID == "api-1") && in.Health != "passing" {
				t.Errorf("first snapshot after the restart: adopted %s is %s, want passing", in.ID, in.Health)
			}
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no snapshot from the second adapter within %v", waitTimeout)
	}
	ev = sdktest.WaitFor(t, events2, "api adopted, web replaced", waitTimeout, allPassing("api-0", "api-1", "web-0"))
	after := pids(ev)
	for _, id := range []string{"api-0", "api-1"} {
		if after[id] != before[id] {
			t.Errorf("%s: pids %v after adoption, want the running %v", id, after[id], before[id])
		}
	}
	if after["web-0"][1] != before["web-0"][1] {
		t.Errorf("web-0's sidecar: pid %s, want the running %s adopted", after["web-0"][1], before["web-0"][1])
	}
	if after["web-0"][0] == before["web-0"][0] {
		t.Errorf("web-0's app was adopted although its environment changed")
	}
	// Stale processes are stopped before their replacements start, which
	// is done when the first snapshot is out.
	stale := allPIDs(map[string][2]string{"old-0": before["old-0"], "web-0": {before["web-0"][0], ""}})
	if len(stale) != 3 {
		t.Fatalf("stale pids %v, want 3", stale)
	}
	for _, pid := range stale {
		if alive(pid) {
			t.Errorf("stale pid %d still running", pid)
		}
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range append(allPIDs(before), allPIDs(after)...) {
		if alive(pid) {
			t.Errorf("pid %d still running after Close", pid)
		}
	}
}

// A changed workloads file is applied; one with errors is reported and
// leaves the last good instances running.
func TestWorkloadsFileChanges(t *testing.T) {
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 1}, "")
	a := newTestAdapter(t)
	sdktest.ConfigureOK(t, a, s.request(t))
	events := watch(t, a)
	ev := sdktest.WaitFor(t, events, "api-0", waitTimeout, allPassing("api-0"))
	first := pids(ev)["api-0"]

	s.writeWorkloads(t, map[string]int{"api": 2, "db": 1}, "")
	ev = sdktest.WaitFor(t, events, "scaled up", waitTimeout, allPassing("api-0", "api-1", "db-0"))
	if pids(ev)["api-0"] != first {
		t.Errorf("api-0 restarted by an unrelated change: %v -> %v", first, pids(ev)["api-0"])
	}

	// Only meta changes: no restart.
	if err := os.WriteFile(s.file, []byte(strings.ReplaceAll(mustRead(t, s.file), `version = "v1"`, `version = "v2"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	ev = sdktest.WaitFor(t, events, "meta v2", waitTimeout, func(ev sdk.WatchEvent) bool {
		return len(ev.Snapshot.Instances) == 3 && ev.Snapshot.Instances[0].Meta["version"] == "v2"
	})
	if pids(ev)["api-0"] != first {
		t.Errorf("api-0 restarted by a meta change: %v -> %v", first, pids(ev)["api-0"])
	}
	running := pids(ev)

	// A broken file: diagnostics, nothing stops.
	if err := os.WriteFile(s.file, []byte("service \"api\" {\n  port = 0\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ev = sdktest.WaitFor(t, events, "diagnostics", waitTimeout, func(ev sdk.WatchEvent) bool { return sdk.HasErrors(ev.Diagnostics) })
	var summaries []string
	ds := withoutIsolation(ev.Diagnostics)
	for _, d := range ds {
		summaries = append(summaries, d.Summary)
	}
	want := []string{"Missing required argument", "Invalid port", "Workloads file not applied"}
	if !reflect.DeepEqual(summaries, want) {
		t.Fatalf("diagnostics %q, want %q", summaries, want)
	}
	if !strings.HasPrefix(ds[1].Detail, s.file+":2:10: ") {
		t.Errorf("detail %q does not start with file:line:col", ds[1].Detail)
	}
	if !reflect.DeepEqual(pids(ev), running) {
		t.Errorf("a broken file changed the instances: %v -> %v", running, pids(ev))
	}

	// Scale down (and fix): db-0 and api-1 stop.
	s.writeWorkloads(t, map[string]int{"api": 1}, "")
	ev = sdktest.WaitFor(t, events, "scaled down", waitTimeout, func(ev sdk.WatchEvent) bool {
		return allPassing("api-0")(ev) && len(withoutIsolation(ev.Diagnostics)) == 0
	})
	for _, id := range []string{"api-1", "db-0"} {
		for _, pid := range allPIDs(map[string][2]string{id: running[id]}) {
			if alive(pid) {
				t.Errorf("%s: pid %d still running after scaling down", id, pid)
			}
		}
	}

	// A changed environment restarts the app, not the sidecar.
	if err := os.WriteFile(s.file, []byte(strings.ReplaceAll(mustRead(t, s.file), ":9001", ":9009")), 0o644); err != nil {
		t.Fatal(err)
	}
	ev = sdktest.WaitFor(t, events, "api-0's app restarted", waitTimeout, func(ev sdk.WatchEvent) bool {
		return allPassing("api-0")(ev) && pids(ev)["api-0"][0] != first[0]
	})
	if got := pids(ev)["api-0"]; got[1] != first[1] {
		t.Errorf("sidecar restarted, but neither its command line nor its identity changed: %v -> %v", first, got)
	}
	second := pids(ev)["api-0"]

	// A new namespace is a new identity: the sidecar restarts too.
	s.writeWorkloads(t, map[string]int{"api": 1}, `  namespace = "shop"`)
	ev = sdktest.WaitFor(t, events, "new namespace", waitTimeout, func(ev sdk.WatchEvent) bool {
		return allPassing("api-0")(ev) && ev.Snapshot.Instances[0].Namespace == "shop"
	})
	if got := pids(ev)["api-0"]; got[0] == second[0] || got[1] == second[1] {
		t.Errorf("app and sidecar not both restarted after a namespace change: %v -> %v", second, got)
	}
}

// Close escalates to SIGKILL for a process that ignores SIGTERM.
func TestCloseKillsStubbornProcess(t *testing.T) {
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"stubborn": 1}, "")
	if err := os.WriteFile(s.file, []byte(strings.Replace(mustRead(t, s.file), `"`+helperApp+`"`, `"`+helperApp+`", "ignore-term"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newTestAdapter(t)
	a.grace = 200 * time.Millisecond
	sdktest.ConfigureOK(t, a, s.request(t))
	ev := sdktest.WaitFor(t, watch(t, a), "stubborn-0", waitTimeout, allPassing("stubborn-0"))
	s.waitReady(t, "stubborn-0", 1) // it ignores SIGTERM from now on
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range allPIDs(pids(ev)) {
		if alive(pid) {
			t.Errorf("pid %d survived Close", pid)
		}
	}
	if d := time.Since(start); d < a.grace || d > 3*time.Second {
		t.Errorf("Close took %v with a 200ms grace: want SIGKILL after the grace period", d)
	}
}

func TestConfigureErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, s *testSetup, r *sdk.ConfigureRequest)
		want   string // summary of an error diagnostic
		detail string // part of its detail
	}{
		{"no source", func(_ *testing.T, _ *testSetup, r *sdk.ConfigureRequest) { r.Source = "" }, "No workloads file", "--adapter local="},
		{"missing file", func(_ *testing.T, s *testSetup, r *sdk.ConfigureRequest) {
			r.Source = filepath.Join(s.dir, "nope.hcl")
		}, "Cannot read workloads file", "nope.hcl"},
		{"no proxy binary", func(_ *testing.T, _ *testSetup, r *sdk.ConfigureRequest) { r.Mesh.ProxyBinary = "" }, "No proxy binary", "--proxy-binary"},
		{"proxy binary missing", func(_ *testing.T, s *testSetup, r *sdk.ConfigureRequest) {
			r.Mesh.ProxyBinary = filepath.Join(s.dir, "weft-proxy")
		}, "Proxy binary not found", "does not exist"},
		{"no join key", func(_ *testing.T, _ *testSetup, r *sdk.ConfigureRequest) { r.Mesh.JoinKey = nil }, "No join key", "JoinKey"},
		{"no controller", func(_ *testing.T, _ *testSetup, r *sdk.ConfigureRequest) { r.Mesh.ControllerAddrs = nil }, "No controller address", "ControllerAddrs"},
		{"no data dir", func(_ *testing.T, _ *testSetup, r *sdk.ConfigureRequest) { r.Mesh.DataDir = "" }, "No data directory", "DataDir"},
		{"first address not loopback", func(_ *testing.T, _ *testSetup, r *sdk.ConfigureRequest) {
			r.Options[OptionFirstAddress] = "10.0.0.2"
		}, "Invalid first_address", "127.0.0.0/8"},
		{"bad file", func(t *testing.T, s *testSetup, _ *sdk.ConfigureRequest) {
			if err := os.WriteFile(s.file, []byte("service \"api\" {\n  command = \"x\"\n  port = 99999\n}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "Invalid port", ":3:10: "},
		{"command not found", func(t *testing.T, s *testSetup, _ *sdk.ConfigureRequest) {
			if err := os.WriteFile(s.file, []byte("service \"api\" {\n  command = \"./bin/nope\"\n  port = 8080\n}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "Command not found", filepath.Join("bin", "nope") + " does not exist"},
		{"app port in use", func(t *testing.T, s *testSetup, _ *sdk.ConfigureRequest) {
			listen(t, s.prefix+"3:"+strconv.Itoa(s.port))
		}, "Port in use", "the app port of instance api-1"},
		{"sidecar port in use", func(t *testing.T, s *testSetup, _ *sdk.ConfigureRequest) {
			listen(t, s.prefix+"2:15001")
		}, "Port in use", "the sidecar's mesh port of instance api-0"},
		{"unreadable state file", func(t *testing.T, s *testSetup, _ *sdk.ConfigureRequest) {
			if err := os.MkdirAll(s.dataDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(s.dataDir, "local-state.json"), []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "Unreadable state file", "delete it"},
		{"watch a relative path", func(_ *testing.T, _ *testSetup, r *sdk.ConfigureRequest) {
			r.Options[OptionWatch] = "data/adapters/local"
		}, "Invalid watch", "absolute path"},
		{"watch its own data directory", func(_ *testing.T, s *testSetup, r *sdk.ConfigureRequest) {
			r.Options[OptionWatch] = s.dataDir + "/"
		}, "Invalid watch", "own data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			s.writeWorkloads(t, map[string]int{"api": 2}, "")
			req := s.request(t)
			tt.change(t, s, req)
			a := newTestAdapter(t)
			resp, err := a.Configure(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, d := range resp.Diagnostics {
				if d.Severity == sdk.SeverityError && d.Summary == tt.want && strings.Contains(d.Detail, tt.detail) {
					found = true
				}
			}
			if !found {
				t.Errorf("diagnostics %+v, want error %q with %q in its detail", resp.Diagnostics, tt.want, tt.detail)
			}
			// Not configured: Watch refuses.
			if err := a.Watch(context.Background(), &sdk.WatchRequest{}, make(chan sdk.WatchEvent)); err == nil {
				t.Error("Watch of an adapter that is not configured returned nil")
			}
		})
	}
}

func getAppInfo(t *testing.T, host string, port int) appInfo {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info appInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	return info
}

func readTokens(t *testing.T, s *testSetup, id string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "proxy", id, "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// checkToken verifies a join token as the controller would.
func checkToken(t *testing.T, tok, id, service string) {
	t.Helper()
	claims, err := ca.NewJoinVerifier(testSecret).Verify(tok)
	if err != nil {
		t.Fatalf("verifying the sidecar's join token: %v", err)
	}
	if claims.Adapter != "local" || claims.Instance != id || claims.Service != service || claims.Namespace != "default" {
		t.Errorf("token claims %+v, want adapter local, instance %s, service %s, namespace default", claims, id, service)
	}
	if left := time.Until(time.Unix(claims.Expires, 0)); left <= 0 || left > 10*time.Minute {
		t.Errorf("token expires in %v, want within 10m", left)
	}
}

func killPID(t *testing.T, pid string) {
	t.Helper()
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		t.Fatalf("bad pid %q", pid)
	}
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// allPIDs flattens pids() output.
func allPIDs(m map[string][2]string) []int {
	var out []int
	for _, pp := range m {
		for _, p := range pp {
			if n, err := strconv.Atoi(p); err == nil && n > 0 {
				out = append(out, n)
			}
		}
	}
	return out
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listen holds addr until the test ends.
func listen(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}
