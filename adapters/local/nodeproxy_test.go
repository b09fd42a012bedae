package local

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// fakeNodeProxy checks its flags, reads its serve file as weft-proxy
// --serve-file does (again every --discover-interval), records every token
// it finds there and each instance set in its data directory ("tokens",
// "served": one line per change), listens on every instance's admin
// address, and exits on SIGTERM.
func fakeNodeProxy(args []string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	fs := flag.NewFlagSet("fake-node-proxy", flag.ExitOnError)
	node := fs.String("node", "", "")
	var controllers []string
	fs.Func("controller", "", func(s string) error { controllers = append(controllers, s); return nil })
	fs.String("trust-bundle", "", "")
	dataDir := fs.String("data-dir", "", "")
	servePath := fs.String("serve-file", "", "")
	every := fs.Duration("discover-interval", 0, "")
	reusePort := fs.Bool("reuse-port", true, "") // weft-proxy's default with --node
	_ = fs.Parse(args)
	fail := func(args ...any) {
		fmt.Fprintln(os.Stderr, append([]any{"fake node proxy:"}, args...)...)
		os.Exit(3)
	}
	if *node == "" || *servePath == "" || *every <= 0 || len(controllers) == 0 || *dataDir == "" || os.Getenv("WEFT_JOIN_TOKEN") != "" || os.Getenv("WEFT_NODE_TOKEN") != "" {
		fail("missing --node, --serve-file, --discover-interval, --controller or --data-dir, or a token in its environment it should not have")
	}
	if *reusePort {
		fail("started without --reuse-port=false: the adapter's apps share its user, and could listen beside the proxy")
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fail(err)
	}
	appendLine := func(name, line string) {
		f, err := os.OpenFile(filepath.Join(*dataDir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fail(err)
		}
		fmt.Fprintln(f, line)
		f.Close()
	}
	listeners := map[string]net.Listener{}
	lastToken, lastServed := "", ""
	read := func() {
		b, err := os.ReadFile(*servePath)
		if err != nil {
			fail(err)
		}
		var sf serveFile
		if err := json.Unmarshal(b, &sf); err != nil || sf.Token == "" {
			fail("serve file:", err, string(b))
		}
		if sf.Token != lastToken {
			appendLine("tokens", sf.Token)
			lastToken = sf.Token
		}
		var ids []string
		want := map[string]bool{}
		for _, in := range sf.Instances {
			ids = append(ids, in.ID+"="+in.Identity)
			want[in.Admin] = true
			if listeners[in.Admin] == nil {
				l, err := net.Listen("tcp", in.Admin)
				if err != nil {
					fail(err)
				}
				listeners[in.Admin] = l
			}
		}
		for addr, l := range listeners {
			if !want[addr] {
				l.Close()
				delete(listeners, addr)
			}
		}
		if served := strings.Join(ids, ","); served != lastServed {
			appendLine("served", served)
			lastServed = served
		}
	}
	read()
	if c, err := net.Dial("unix", filepath.Join(*dataDir, "..", "..", "..", "ready.sock")); err == nil {
		fmt.Fprintln(c, "node:"+*node)
		c.Close()
	}
	t := time.NewTicker(*every)
	for {
		select {
		case <-term:
			return
		case <-t.C:
			read()
		}
	}
}

// writeModes writes a workloads file of services (name -> instances), each
// in the proxy mode modes names ("" for the default).
func (s *testSetup) writeModes(t *testing.T, services map[string]int, modes map[string]string) {
	t.Helper()
	s.writeModesExtra(t, services, modes, nil)
}

// writeModesExtra is writeModes with more lines for some services.
func (s *testSetup) writeModesExtra(t *testing.T, services map[string]int, modes, extra map[string]string) {
	t.Helper()
	var b strings.Builder
	for name, n := range services {
		mode := ""
		if m := modes[name]; m != "" {
			mode = fmt.Sprintf("  proxy_mode = %q\n", m)
		}
		if e := extra[name]; e != "" {
			mode += e + "\n"
		}
		fmt.Fprintf(&b, "service %q {\n  command = %q\n  args = [%q]\n  instances = %d\n  port = %d\n  env = { TEST_READY = %q }\n%s}\n",
			name, testBinary(t), helperApp, n, s.port, s.readySocket(), mode)
	}
	tmp := s.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.file); err != nil {
		t.Fatal(err)
	}
}

// The node proxy through the modes' changes: node-mode instances share
// one proxy process, started with a node token for the adapter's node
// that the controller's verifier takes for each of them once; a service
// moving into node mode swaps its sidecars for the node proxy, which
// takes it from its serve file without restarting, as it takes an
// identity change; one moving out gets its sidecars back (the node proxy
// restarts only because the instance whose group it ran with left it);
// without node-mode instances it stops. The instances report the
// adapter's node.
func TestNodeProxyModes(t *testing.T) {
	s := newSetup(t)
	s.writeModes(t, map[string]int{"api": 2, "db": 1}, map[string]string{"api": "node"})
	a := newTestAdapter(t)
	req := s.request(t)
	req.Options[OptionNode] = "node-t"
	sdktest.ConfigureOK(t, a, req)
	events := watch(t, a)
	ev := sdktest.WaitFor(t, events, "api on the node proxy", waitTimeout, allPassing("api-0", "api-1", "db-0"))
	p := pids(ev)
	if p["api-0"][1] != p["api-1"][1] || p["api-0"][1] == p["db-0"][1] {
		t.Fatalf("proxy pids %v: want api-0 and api-1 on one node proxy, db-0 on its own sidecar", p)
	}
	for _, in := range ev.Snapshot.Instances {
		if in.Node != "node-t" {
			t.Errorf("%s reports node %q, want node-t", in.ID, in.Node)
		}
	}
	s.waitReady(t, "node:node-t", 1) // it has written its token
	toks := readLines(t, filepath.Join(s.dataDir, "proxy", nodeSlotID, "tokens"))
	if len(toks) != 1 {
		t.Fatalf("node proxy tokens %q, want one", toks)
	}
	v := ca.NewJoinVerifier(testSecret)
	for _, id := range []string{"api-0", "api-1"} {
		c, err := v.VerifyNodeAnd(toks[0], id, nil)
		if err != nil || c.Node != "node-t" || c.Adapter != Name {
			t.Errorf("node token for %s: %+v, %v; want node node-t of adapter local", id, c, err)
		}
	}
	firstNode, dbSidecar := p["api-0"][1], p["db-0"][1]

	// db joins the node proxy: its sidecar stops, and the same node proxy
	// serves all three, told by its serve file (with a fresh token).
	s.writeModes(t, map[string]int{"api": 2, "db": 1}, map[string]string{"api": "node", "db": "node"})
	ev = sdktest.WaitFor(t, events, "db on the node proxy", waitTimeout, func(ev sdk.WatchEvent) bool {
		p := pids(ev)
		return allPassing("api-0", "api-1", "db-0")(ev) && p["db-0"][1] == p["api-0"][1]
	})
	secondNode := pids(ev)["db-0"][1]
	if secondNode != firstNode {
		t.Fatalf("the node proxy restarted (pid %s, was %s) when db joined it", secondNode, firstNode)
	}
	waitExited(t, "db's sidecar, after db joined the node proxy", atoi(t, dbSidecar))
	waitServed(t, filepath.Join(s.dataDir, "proxy", nodeSlotID, "served"), "api-0=default/api,api-1=default/api,db-0=default/db")
	if toks := readLines(t, filepath.Join(s.dataDir, "proxy", nodeSlotID, "tokens")); len(toks) != 2 {
		t.Errorf("node proxy tokens %q, want two: the start's and the change's", toks)
	}

	// api leaves node mode ("instance" is a sidecar too): sidecars of its own.
	s.writeModes(t, map[string]int{"api": 2, "db": 1}, map[string]string{"api": "instance", "db": "node"})
	ev = sdktest.WaitFor(t, events, "api on sidecars", waitTimeout, func(ev sdk.WatchEvent) bool {
		p := pids(ev)
		return allPassing("api-0", "api-1", "db-0")(ev) && p["api-0"][1] != p["api-1"][1] && p["api-0"][1] != p["db-0"][1] && p["db-0"][1] != secondNode
	})
	thirdNode := pids(ev)["db-0"][1]

	waitExited(t, "the node proxy that ran with api-0's group", atoi(t, secondNode))

	// A new identity (db serves another service) reaches the node proxy
	// in its serve file: the proxy serves it anew without restarting.
	s.writeModesExtra(t, map[string]int{"api": 2, "db": 1}, map[string]string{"api": "instance", "db": "node"}, map[string]string{"db": `  service = "db2"`})
	ev = sdktest.WaitFor(t, events, "db as db2", waitTimeout, func(ev sdk.WatchEvent) bool {
		return allPassing("api-0", "api-1", "db-0")(ev) && ev.Snapshot.Instances[2].Service == "db2"
	})
	if got := pids(ev)["db-0"][1]; got != thirdNode {
		t.Fatalf("the node proxy restarted (pid %s, was %s) when its instance's identity changed", got, thirdNode)
	}
	waitServed(t, filepath.Join(s.dataDir, "proxy", nodeSlotID, "served"), "db-0=default/db2")

	// No node-mode instance left: the node proxy stops.
	s.writeModes(t, map[string]int{"api": 2, "db": 1}, nil)
	ev = sdktest.WaitFor(t, events, "all on sidecars", waitTimeout, func(ev sdk.WatchEvent) bool {
		return allPassing("api-0", "api-1", "db-0")(ev) && pids(ev)["db-0"][1] != thirdNode
	})
	waitExited(t, "the node proxy, without node-mode instances", atoi(t, thirdNode))
}

// Application proxies: one process per application, shared by its
// instances and no other's, each started with an application token that
// the controller's verifier takes for its own service's instances (and
// whose claims name that service); the node proxy beside them serves the
// node-mode service.
func TestApplicationProxyModes(t *testing.T) {
	s := newSetup(t)
	s.writeModes(t, map[string]int{"api": 2, "web": 1, "db": 1}, map[string]string{"api": "application", "web": "application", "db": "node"})
	a := newTestAdapter(t)
	req := s.request(t)
	req.Options[OptionNode] = "node-t"
	sdktest.ConfigureOK(t, a, req)
	events := watch(t, a)
	ev := sdktest.WaitFor(t, events, "api and web on application proxies", waitTimeout, allPassing("api-0", "api-1", "db-0", "web-0"))
	p := pids(ev)
	if p["api-0"][1] != p["api-1"][1] || p["api-0"][1] == p["web-0"][1] || p["api-0"][1] == p["db-0"][1] || p["web-0"][1] == p["db-0"][1] {
		t.Fatalf("proxy pids %v: want api-0 and api-1 on one proxy, web-0 and db-0 each on another", p)
	}
	s.waitReady(t, "node:node-t", 3) // each shared proxy has written its token
	v := ca.NewJoinVerifier(testSecret)
	for _, tc := range []struct {
		slot, svc string
		serves    []string
	}{
		{"_app.default.api", "api", []string{"api-0", "api-1"}},
		{"_app.default.web", "web", []string{"web-0"}},
		{nodeSlotID, "", []string{"db-0"}},
	} {
		toks := readLines(t, filepath.Join(s.dataDir, "proxy", tc.slot, "tokens"))
		if len(toks) != 1 {
			t.Fatalf("%s tokens %q, want one", tc.slot, toks)
		}
		for _, id := range tc.serves {
			c, err := v.VerifyNodeAnd(toks[0], id, nil)
			if err != nil || c.Node != "node-t" || c.Service != tc.svc || c.IsApplicationToken() != (tc.svc != "") {
				t.Errorf("%s's token for %s: %+v, %v; want node node-t, service %q", tc.slot, id, c, err, tc.svc)
			}
		}
	}

	// web moves to the node proxy: its application proxy stops.
	webProxy := p["web-0"][1]
	s.writeModes(t, map[string]int{"api": 2, "web": 1, "db": 1}, map[string]string{"api": "application", "web": "node", "db": "node"})
	ev = sdktest.WaitFor(t, events, "web on the node proxy", waitTimeout, func(ev sdk.WatchEvent) bool {
		p := pids(ev)
		return allPassing("api-0", "api-1", "db-0", "web-0")(ev) && p["web-0"][1] == p["db-0"][1] && p["web-0"][1] != webProxy
	})
	waitExited(t, "web's application proxy, after web left application mode", atoi(t, webProxy))
	if got := pids(ev)["api-0"][1]; got != p["api-0"][1] {
		t.Errorf("api's application proxy restarted (pid %s, was %s) though api did not change", got, p["api-0"][1])
	}
}

// waitExited waits, bounded, for process pid to exit (the runner stops a
// replaced process after it announced the change), and says how long it
// took.
func waitExited(t *testing.T, what string, pid int) {
	t.Helper()
	start := time.Now()
	select {
	case <-pollExit(pid, 10*time.Millisecond, nil):
		t.Logf("%s (pid %d) exited %s after the change was announced", what, pid, time.Since(start).Round(time.Millisecond))
	case <-time.After(waitTimeout):
		t.Fatalf("%s (pid %d) still runs %s after the change", what, pid, waitTimeout)
	}
}

// waitServed waits, bounded, until the fake node proxy has recorded
// served (its instances and identities) as its last serve file's.
func waitServed(t *testing.T, path, served string) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < waitTimeout {
		if b, err := os.ReadFile(path); err == nil {
			if lines := strings.Fields(string(b)); len(lines) > 0 && lines[len(lines)-1] == served {
				t.Logf("the node proxy read %s after %s", served, time.Since(start).Round(time.Millisecond))
				return
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	t.Fatalf("the node proxy did not read %q from its serve file within %s", served, waitTimeout)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("pid %q: %v", s, err)
	}
	return n
}

// proxy_mode takes sidecar, instance, application and node, and says what
// else is not known.
func TestDecodeProxyMode(t *testing.T) {
	for _, tc := range []struct{ src, want, err string }{
		{``, ProxyModeSidecar, ""},
		{`proxy_mode = "sidecar"`, ProxyModeSidecar, ""},
		{`proxy_mode = "instance"`, ProxyModeSidecar, ""},
		{`proxy_mode = "node"`, ProxyModeNode, ""},
		{`proxy_mode = "application"`, ProxyModeApplication, ""},
		{`proxy_mode = "nodes"`, "", "Invalid proxy mode"},
		{`proxy_mode = 3`, "", "Invalid proxy mode"},
	} {
		src := fmt.Sprintf("service \"api\" {\n  command = \"app\"\n  port = 8080\n  %s\n}\n", tc.src)
		w, diags := parseWorkloads([]byte(src), "w.hcl")
		switch {
		case tc.err != "":
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.err) {
				t.Errorf("%s: diagnostics %v, want %q", tc.src, diags, tc.err)
			}
		case diags.HasErrors():
			t.Errorf("%s: %v", tc.src, diags)
		case len(w.Services) != 1 || w.Services[0].ProxyMode != tc.want:
			t.Errorf("%s: services %+v, want proxy mode %s", tc.src, w.Services, tc.want)
		}
	}
}

// The demo's node and application variants parse, with the modes their
// comments promise.
func TestExampleWorkloadsProxyModes(t *testing.T) {
	for file, want := range map[string]map[string]string{
		"workloads-node.hcl":        {"frontend": ProxyModeSidecar, "api": ProxyModeNode, "store": ProxyModeNode},
		"workloads-application.hcl": {"frontend": ProxyModeSidecar, "api": ProxyModeApplication, "store": ProxyModeNode},
	} {
		w, diags := loadWorkloads(filepath.Join("..", "..", "examples", "local", file))
		if len(diags) > 0 {
			t.Fatalf("%s: %v", file, diags)
		}
		got := map[string]string{}
		for _, s := range w.Services {
			got[s.Name] = s.ProxyMode
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: proxy modes %v, want %v", file, got, want)
		}
	}
}
