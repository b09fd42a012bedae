package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/adapters/conformance"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/host"
)

const wait = 20 * time.Second

// writeInstances atomically replaces path with a file listing instances
// with the given IDs, plus one malformed record that must be skipped.
func writeInstances(t *testing.T, path string, ids ...string) {
	t.Helper()
	records := []any{map[string]any{"id": "broken", "service": "web", "ports": "none"}}
	for i, id := range ids {
		records = append(records, map[string]any{
			"id": id, "service": "web", "address": "127.0.0.1",
			"ports": map[string]int{"app": 8000 + i, "mesh": 21000 + i},
		})
	}
	data, err := json.Marshal(map[string]any{"instances": records})
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func request(path string) *plugins.ConfigureRequest {
	return &plugins.ConfigureRequest{Source: path, Options: map[string]string{"poll_interval": "20ms"}}
}

func fixture(t *testing.T) conformance.Fixture {
	dir := t.TempDir()
	path := filepath.Join(dir, "instances.json")
	writeInstances(t, path, "web-1", "web-2")
	return conformance.Fixture{
		Good:    request(path),
		Bad:     request(filepath.Join(dir, "missing.json")),
		WantIDs: []string{"web-1", "web-2"},
		Change: func(t *testing.T) []string {
			writeInstances(t, path, "web-2", "web-3")
			return []string{"web-2", "web-3"}
		},
	}
}

func TestConformanceInMemory(t *testing.T) {
	conformance.Run(t, conformance.InMemory(func() plugins.Adapter { return &fileAdapter{} }), fixture)
}

func TestConfigureDiagnostics(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	writeInstances(t, good, "a")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  plugins.ConfigureRequest
		want string // summary of the one error diagnostic, "" for none
	}{
		{name: "good", req: plugins.ConfigureRequest{Source: good}},
		{name: "no source", req: plugins.ConfigureRequest{}, want: "No instances file"},
		{name: "missing file", req: plugins.ConfigureRequest{Source: filepath.Join(dir, "nope.json")}, want: "Cannot read instances file"},
		{name: "malformed file", req: plugins.ConfigureRequest{Source: bad}, want: "Instances file is malformed"},
		{name: "unknown option", req: plugins.ConfigureRequest{Source: good, Options: map[string]string{"pol": "1s"}}, want: "Unknown option"},
		{name: "bad interval", req: plugins.ConfigureRequest{Source: good, Options: map[string]string{"poll_interval": "-1s"}}, want: "Invalid poll_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := (&fileAdapter{}).Configure(context.Background(), &tt.req)
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			var got string
			if len(resp.Diagnostics) > 0 {
				got = resp.Diagnostics[0].Summary
			}
			if len(resp.Diagnostics) > 1 || got != tt.want {
				t.Errorf("diagnostics = %+v, want one named %q", resp.Diagnostics, tt.want)
			}
		})
	}
}

// TestPluginProcess builds the adapter with go build, as a plugin author
// would, and runs it as a real plugin process.
func TestPluginProcess(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building the plugin needs the go command in PATH: %v", err)
	}
	pluginDir := t.TempDir()
	build := exec.Command(goBin, "build", "-o", filepath.Join(pluginDir, "weft-adapter-file"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin, err := host.Find(pluginDir, "file")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Conformance", func(t *testing.T) {
		conformance.Run(t, conformance.OverPlugin(func() *exec.Cmd { return exec.Command(bin) }), fixture)
	})

	t.Run("SupervisedRestart", func(t *testing.T) {
		supervisedRestart(t, bin)
	})
}

// supervisedRestart loads the plugin under host.Supervise, SIGKILLs it and
// sees it restarted and its snapshot sent again, never an empty one.
func supervisedRestart(t *testing.T, bin string) {
	path := filepath.Join(t.TempDir(), "instances.json")
	writeInstances(t, path, "web-1", "web-2")

	updates := make(chan host.Update)
	snapshots := make(chan []string, 100)
	statuses := make(chan host.Status, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- host.Supervise(ctx, host.Options{
			Name:       "file",
			Command:    func() *exec.Cmd { return exec.Command(bin) },
			Request:    *request(path),
			Logger:     hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}),
			MinBackoff: 20 * time.Millisecond,
			MaxBackoff: time.Second,
		}, updates, func(st host.Status) { statuses <- st })
	}()
	// Every update is checked here: none may be empty.
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for u := range updates {
			var ids []string
			for _, in := range u.Snapshot.Instances {
				ids = append(ids, in.ID)
			}
			if len(ids) == 0 || u.Snapshot.Adapter != "file" {
				t.Errorf("update %+v: want a non-empty snapshot of adapter file", u)
			}
			snapshots <- ids
		}
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Supervise: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Supervise did not return within %v of cancel", wait)
		}
		close(updates)
		<-collected
	}()

	waitSnapshot := func(what string) {
		t.Helper()
		select {
		case ids := <-snapshots:
			if !slices.Equal(ids, []string{"web-1", "web-2"}) {
				t.Errorf("%s: IDs %v, want [web-1 web-2]", what, ids)
			}
		case <-time.After(wait):
			t.Fatalf("no %s within %v", what, wait)
		}
	}
	waitStatus := func(what string, ok func(host.Status) bool) host.Status {
		t.Helper()
		timeout := time.After(wait)
		for {
			select {
			case st := <-statuses:
				if ok(st) {
					return st
				}
			case <-timeout:
				t.Fatalf("no status with %s within %v", what, wait)
			}
		}
	}

	waitSnapshot("first snapshot")
	first := waitStatus("a running, configured plugin", func(st host.Status) bool { return st.Running && st.Pid > 0 && st.Info != nil })
	if first.Info == nil || first.Info.Name != "file" {
		t.Errorf("status info = %+v, want the file adapter's", first.Info)
	}
	p, err := os.FindProcess(first.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("killing plugin %d: %v", first.Pid, err)
	}

	down := waitStatus("the plugin down", func(st host.Status) bool { return !st.Running })
	if down.LastError == "" {
		t.Error("the plugin's death left no LastError")
	}
	again := waitStatus("a restarted plugin", func(st host.Status) bool { return st.Running && st.Pid > 0 })
	if again.Restarts <= first.Restarts || again.Pid == first.Pid {
		t.Errorf("after the kill: restarts %d, pid %d; before: restarts %d, pid %d; want more restarts and a new pid",
			again.Restarts, again.Pid, first.Restarts, first.Pid)
	}
	waitSnapshot("snapshot after the restart")
}
