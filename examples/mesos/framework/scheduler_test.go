package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/mesossim"
)

// fakeAdmin stands for the controller's admin API: it checks the token
// and hands out join tokens, recording what was asked.
type fakeAdmin struct {
	mu   sync.Mutex
	asks []map[string]any
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/join-tokens" || r.Header.Get("Authorization") != "Bearer admin-secret" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.asks = append(f.asks, req)
	f.mu.Unlock()
	// A join token names its instance; a node-proxy token its node.
	json.NewEncoder(w).Encode(map[string]string{"token": fmt.Sprint("wj1.test.", req["instance"], req["node"])})
}

// running waits (bounded) until the simulator runs exactly the tasks
// whose IDs cond accepts, and returns them.
func running(t *testing.T, c *mesossim.Cluster, what string, cond func(ids []string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var ids []string
	for time.Now().Before(deadline) {
		ids = ids[:0]
		for _, tk := range c.Tasks() {
			if tk.State == "TASK_RUNNING" {
				ids = append(ids, tk.ID)
			}
		}
		sort.Strings(ids)
		if cond(ids) {
			return ids
		}
		time.Sleep(20 * time.Millisecond) // polling the simulator's state, bounded
	}
	t.Fatalf("timed out waiting for %s; running: %v", what, ids)
	return nil
}

func is(want ...string) func([]string) bool {
	return func(ids []string) bool { return strings.Join(ids, ",") == strings.Join(want, ",") }
}

// The framework launches app + sidecar groups with join tokens, replaces
// the instances of a partitioned agent, kills the old tasks when the
// agent comes back, and stops everything on shutdown.
func TestSchedulerAgainstSimulator(t *testing.T) {
	dir := t.TempDir()
	c, err := mesossim.Start(mesossim.Options{HeartbeatInterval: time.Second, OfferInterval: 20 * time.Millisecond,
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
	proxy := filepath.Join(dir, "fake-proxy")
	if err := os.WriteFile(proxy, []byte("#!/bin/sh\ntest -n \"$WEFT_JOIN_TOKEN\" || exit 3\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newScheduler(config{masters: c.URLs()[0], name: "test", user: "root", adminURL: srv.URL, adminToken: "admin-secret", adminCAs: cas,
		controller: "127.0.0.1:7400", trustBundle: "/ca.crt", proxy: proxy,
		apps: []appSpec{{Service: "api", Instances: 2, Command: "exec sleep 60"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()

	running(t, c, "two groups", is("api-0.1.app", "api-0.1.proxy", "api-1.1.app", "api-1.1.proxy"))
	admin.mu.Lock()
	if len(admin.asks) != 2 {
		t.Fatalf("%d join tokens asked for, want 2", len(admin.asks))
	}
	for _, a := range admin.asks {
		if a["adapter"] != "mesos" || a["service"] != "api" || a["namespace"] != "default" || !strings.HasSuffix(a["instance"].(string), ".app") {
			t.Errorf("join token request %v", a)
		}
	}
	admin.mu.Unlock()

	agent := c.AgentIDs()[0]
	if err := c.PartitionAgent(agent); err != nil {
		t.Fatal(err)
	}
	if err := c.HealAgent(agent); err != nil {
		t.Fatal(err)
	}
	// The replacements run; the old tasks, back from the partition, are
	// killed.
	running(t, c, "the replacements alone", is("api-0.2.app", "api-0.2.proxy", "api-1.2.app", "api-1.2.proxy"))

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
