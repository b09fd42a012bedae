package local

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// fakeNodeProxy checks that it got a node token and its flags, records the
// token in its data directory, listens on every --serve admin address and
// exits on SIGTERM.
func fakeNodeProxy(args []string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	fs := flag.NewFlagSet("fake-node-proxy", flag.ExitOnError)
	node := fs.String("node", "", "")
	var serve, controllers []string
	fs.Func("serve", "", func(s string) error { serve = append(serve, s); return nil })
	fs.Func("controller", "", func(s string) error { controllers = append(controllers, s); return nil })
	fs.String("trust-bundle", "", "")
	dataDir := fs.String("data-dir", "", "")
	_ = fs.Parse(args)
	tok := os.Getenv("WEFT_NODE_TOKEN")
	if tok == "" || *node == "" || len(serve) == 0 || len(controllers) == 0 || *dataDir == "" || os.Getenv("WEFT_JOIN_TOKEN") != "" {
		fmt.Fprintln(os.Stderr, "fake node proxy: missing node token, --node, --serve, --controller or --data-dir, or a join token it should not have")
		os.Exit(3)
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "fake node proxy:", err)
		os.Exit(3)
	}
	f, err := os.OpenFile(filepath.Join(*dataDir, "tokens"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake node proxy:", err)
		os.Exit(3)
	}
	fmt.Fprintln(f, tok)
	f.Close()
	for _, sv := range serve {
		_, admin, _ := strings.Cut(sv, "=")
		l, err := net.Listen("tcp", admin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake node proxy:", err)
			os.Exit(3)
		}
		defer l.Close()
	}
	if c, err := net.Dial("unix", filepath.Join(*dataDir, "..", "..", "..", "ready.sock")); err == nil {
		fmt.Fprintln(c, "node:"+*node)
		c.Close()
	}
	<-term
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
// moving into or out of node mode swaps its sidecars for the node proxy
// (or back), which restarts with the new list; without node-mode
// instances it stops. The instances report the adapter's node.
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

	// db joins the node proxy: its sidecar stops, a new node proxy serves all three.
	s.writeModes(t, map[string]int{"api": 2, "db": 1}, map[string]string{"api": "node", "db": "node"})
	ev = sdktest.WaitFor(t, events, "db on the node proxy", waitTimeout, func(ev sdk.WatchEvent) bool {
		p := pids(ev)
		return allPassing("api-0", "api-1", "db-0")(ev) && p["db-0"][1] == p["api-0"][1] && p["api-0"][1] != firstNode
	})
	secondNode := pids(ev)["db-0"][1]
	for _, pid := range []string{firstNode, dbSidecar} {
		if alive(atoi(t, pid)) {
			t.Errorf("pid %s (the old node proxy or db's sidecar) still runs", pid)
		}
	}

	// api leaves node mode ("instance" is a sidecar too): sidecars of its own.
	s.writeModes(t, map[string]int{"api": 2, "db": 1}, map[string]string{"api": "instance", "db": "node"})
	ev = sdktest.WaitFor(t, events, "api on sidecars", waitTimeout, func(ev sdk.WatchEvent) bool {
		p := pids(ev)
		return allPassing("api-0", "api-1", "db-0")(ev) && p["api-0"][1] != p["api-1"][1] && p["api-0"][1] != p["db-0"][1] && p["db-0"][1] != secondNode
	})
	thirdNode := pids(ev)["db-0"][1]

	// A new identity (db serves another service) restarts the node proxy,
	// as it restarts a sidecar.
	s.writeModesExtra(t, map[string]int{"api": 2, "db": 1}, map[string]string{"api": "instance", "db": "node"}, map[string]string{"db": `  service = "db2"`})
	ev = sdktest.WaitFor(t, events, "db as db2", waitTimeout, func(ev sdk.WatchEvent) bool {
		return allPassing("api-0", "api-1", "db-0")(ev) && ev.Snapshot.Instances[2].Service == "db2" && pids(ev)["db-0"][1] != thirdNode
	})
	fourthNode := pids(ev)["db-0"][1]
	if alive(atoi(t, thirdNode)) {
		t.Errorf("node proxy pid %s still runs after its instance's identity changed", thirdNode)
	}
	thirdNode = fourthNode

	// No node-mode instance left: the node proxy stops.
	s.writeModes(t, map[string]int{"api": 2, "db": 1}, nil)
	ev = sdktest.WaitFor(t, events, "all on sidecars", waitTimeout, func(ev sdk.WatchEvent) bool {
		return allPassing("api-0", "api-1", "db-0")(ev) && pids(ev)["db-0"][1] != thirdNode
	})
	for _, pid := range []string{secondNode, thirdNode} {
		if alive(atoi(t, pid)) {
			t.Errorf("node proxy pid %s still runs without node-mode instances", pid)
		}
	}
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
	if alive(atoi(t, webProxy)) {
		t.Errorf("web's application proxy (pid %s) still runs after web left application mode", webProxy)
	}
	if got := pids(ev)["api-0"][1]; got != p["api-0"][1] {
		t.Errorf("api's application proxy restarted (pid %s, was %s) though api did not change", got, p["api-0"][1])
	}
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
