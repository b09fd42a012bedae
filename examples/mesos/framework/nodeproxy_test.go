package main

import (
	"context"
	"crypto/x509"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/mesossim"
)

// With --node-proxy the framework launches one node-proxy task per agent,
// each with a token asked for its own task on its own agent, runs
// node-mode apps without a sidecar (at most max_per_agent per agent),
// keeps sidecars for the others, and relaunches a node proxy that dies.
func TestSchedulerNodeProxies(t *testing.T) {
	dir := t.TempDir()
	c, err := mesossim.Start(mesossim.Options{Agents: 2, HeartbeatInterval: time.Second, OfferInterval: 20 * time.Millisecond,
		KillGrace: time.Second, WorkDir: filepath.Join(dir, "sandboxes")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	admin := &fakeAdmin{}
	srv := httptest.NewTLSServer(admin)
	defer srv.Close()
	cas := x509.NewCertPool()
	cas.AddCert(srv.Certificate())
	// The fake proxy insists on its credential, as weft-proxy does.
	proxy := filepath.Join(dir, "fake-proxy")
	script := "#!/bin/sh\ncase \"$*\" in *--node*) test -n \"$WEFT_NODE_PROXY_TOKEN\" || exit 3;; *) test -n \"$WEFT_JOIN_TOKEN\" || exit 3;; esac\nexec sleep 60\n"
	if err := os.WriteFile(proxy, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newScheduler(config{masters: c.URLs()[0], name: "test", user: "root", adminURL: srv.URL, adminToken: "admin-secret", adminCAs: cas,
		controller: "127.0.0.1:7400", trustBundle: "/ca.crt", proxy: proxy, nodeProxy: true,
		apps: []appSpec{
			{Service: "api", Instances: 2, Command: "exec sleep 60", ProxyMode: "node", MaxPerAgent: 1},
			{Service: "web", Instances: 1, Command: "exec sleep 60"},
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()

	running(t, c, "two node proxies, two node-mode api tasks and web with its sidecar",
		is("api-0.1.app", "api-1.1.app", "web-0.1.app", "web-0.1.proxy", "weft-node-proxy.1", "weft-node-proxy.2"))
	agentOf := map[string]string{}
	for _, tk := range c.Tasks() {
		agentOf[tk.ID] = tk.AgentID
	}
	if agentOf["weft-node-proxy.1"] == agentOf["weft-node-proxy.2"] {
		t.Fatalf("both node proxies on agent %s: want one per agent", agentOf["weft-node-proxy.1"])
	}
	if agentOf["api-0.1.app"] == agentOf["api-1.1.app"] {
		t.Fatalf("both api tasks on agent %s despite max_per_agent 1", agentOf["api-0.1.app"])
	}
	admin.mu.Lock()
	var nodes []string
	for _, a := range admin.asks {
		if n, ok := a["node"].(string); ok {
			nodes = append(nodes, n)
			if a["adapter"] != "mesos" || a["instance"] != nil {
				t.Errorf("node-proxy token request %v", a)
			}
		} else if a["service"] == "api" {
			t.Errorf("a join token asked for node-mode api: %v", a)
		}
	}
	admin.mu.Unlock()
	fw := s.info.ID.GetValue()
	want := map[string]bool{
		nodeProxyTokenNode(fw, agentOf["weft-node-proxy.1"], "weft-node-proxy.1"): true,
		nodeProxyTokenNode(fw, agentOf["weft-node-proxy.2"], "weft-node-proxy.2"): true,
	}
	if len(nodes) != 2 || !want[nodes[0]] || !want[nodes[1]] {
		t.Fatalf("node-proxy tokens asked for %v, want one for each node-proxy task on its agent: %v", nodes, want)
	}

	// A node proxy that dies is replaced on its agent, with a new task.
	if err := c.CrashTask("weft-node-proxy.1"); err != nil {
		t.Fatal(err)
	}
	running(t, c, "a new node proxy", is("api-0.1.app", "api-1.1.app", "web-0.1.app", "web-0.1.proxy", "weft-node-proxy.2", "weft-node-proxy.3"))
	for _, tk := range c.Tasks() {
		if tk.ID == "weft-node-proxy.3" && tk.AgentID != agentOf["weft-node-proxy.1"] {
			t.Fatalf("the replacement node proxy runs on %s, not on the agent that lost its own (%s)", tk.AgentID, agentOf["weft-node-proxy.1"])
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the framework did not stop within 30s")
	}
	if n := len(c.Tasks()); n != 0 {
		t.Fatalf("%d tasks left after the framework stopped: %+v", n, c.Tasks())
	}
}

func TestLoadProxyMode(t *testing.T) {
	tests := []struct {
		name, apps string
		nodeProxy  bool
		wantErr    string
	}{
		{name: "node with --node-proxy", apps: `[{"service":"api","instances":1,"command":"x","proxy_mode":"node"}]`, nodeProxy: true},
		{name: "node without --node-proxy", apps: `[{"service":"api","instances":1,"command":"x","proxy_mode":"node"}]`, wantErr: "start the framework with --node-proxy"},
		{name: "sidecar", apps: `[{"service":"api","instances":1,"command":"x","proxy_mode":"sidecar"}]`},
		{name: "unknown", apps: `[{"service":"api","instances":1,"command":"x","proxy_mode":"application"}]`, nodeProxy: true, wantErr: `proxy_mode "application"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			apps, tok := filepath.Join(dir, "apps.json"), filepath.Join(dir, "admin.token")
			if err := os.WriteFile(apps, []byte(tt.apps), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tok, []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c := config{adminTokenFile: tok, nodeProxy: tt.nodeProxy}
			err := c.load(apps)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("load: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// The example's node-mode apps file loads.
func TestExampleNodeAppsLoad(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tok, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config{adminTokenFile: tok, nodeProxy: true}
	if err := c.load(filepath.Join("..", "apps-node.json")); err != nil {
		t.Fatal(err)
	}
	if len(c.apps) != 2 || !c.apps[1].nodeMode() {
		t.Fatalf("apps %+v: want frontend and api in node mode", c.apps)
	}
}
