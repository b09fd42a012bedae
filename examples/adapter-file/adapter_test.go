package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/host"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
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

func request(path string) *sdk.ConfigureRequest {
	return &sdk.ConfigureRequest{Source: path, Options: map[string]string{"poll_interval": "20ms"}}
}

func fixture(t *testing.T) sdktest.Fixture {
	dir := t.TempDir()
	path := filepath.Join(dir, "instances.json")
	writeInstances(t, path, "web-1", "web-2")
	return sdktest.Fixture{
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
	sdktest.Run(t, sdktest.InMemory(func() sdk.Adapter { return &fileAdapter{} }), fixture)
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
		req  sdk.ConfigureRequest
		want string // summary of the one error diagnostic, "" for none
	}{
		{name: "good", req: sdk.ConfigureRequest{Source: good}},
		{name: "no source", req: sdk.ConfigureRequest{}, want: "No instances file"},
		{name: "missing file", req: sdk.ConfigureRequest{Source: filepath.Join(dir, "nope.json")}, want: "Cannot read instances file"},
		{name: "malformed file", req: sdk.ConfigureRequest{Source: bad}, want: "Instances file is malformed"},
		{name: "unknown option", req: sdk.ConfigureRequest{Source: good, Options: map[string]string{"pol": "1s"}}, want: "Unknown option"},
		{name: "bad interval", req: sdk.ConfigureRequest{Source: good, Options: map[string]string{"poll_interval": "-1s"}}, want: "Invalid poll_interval"},
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
		sdktest.Run(t, sdktest.OverPlugin(func() *exec.Cmd { return exec.Command(bin) }), fixture)
	})

	// Pinned as the README says: sha256sum's output beside the binary.
	pin(t, bin)

	t.Run("SupervisedRestart", func(t *testing.T) {
		supervisedRestart(t, bin)
	})

	t.Run("ChangedBinaryRefused", func(t *testing.T) {
		changedBinaryRefused(t, bin)
	})
}

// pin writes bin.sha256 as `sha256sum weft-adapter-file` prints it.
func pin(t *testing.T, bin string) {
	t.Helper()
	sum, err := host.FileChecksum(bin)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("%x  %s\n", sum, filepath.Base(bin))
	if err := os.WriteFile(bin+host.ChecksumSuffix, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

// changedBinaryRefused: a copy of the plugin, pinned, loads; the same copy
// with one byte appended after pinning is refused, with an error that
// says so and gives both checksums, and sends nothing.
func changedBinaryRefused(t *testing.T, built string) {
	bin := filepath.Join(t.TempDir(), "weft-adapter-file")
	b, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	pin(t, bin)
	path := filepath.Join(t.TempDir(), "instances.json")
	writeInstances(t, path, "web-1")

	run := func(until func(host.Status) bool) (host.Status, int) {
		t.Helper()
		updates := make(chan host.Update, 100)
		statuses := make(chan host.Status, 1000)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- host.Supervise(ctx, host.Options{
				Name:       "file",
				Command:    func() *exec.Cmd { return exec.Command(bin) },
				Checksum:   func() ([]byte, error) { return host.Pin(bin, nil) },
				Request:    *request(path),
				Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
				MinBackoff: 20 * time.Millisecond,
				MaxBackoff: 100 * time.Millisecond,
			}, updates, func(st host.Status) { statuses <- st })
		}()
		defer func() {
			cancel()
			select {
			case <-done:
			case <-time.After(wait):
				t.Errorf("Supervise did not return within %v of cancel", wait)
			}
		}()
		timeout := time.After(wait)
		for {
			select {
			case st := <-statuses:
				if until(st) {
					return st, len(updates)
				}
			case <-timeout:
				t.Fatalf("no such status within %v", wait)
			}
		}
	}

	if st, _ := run(func(st host.Status) bool { return st.Running && st.Info != nil }); st.LastError != "" {
		t.Errorf("the pinned binary: LastError %q", st.LastError)
	}

	f, err := os.OpenFile(bin, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	changed, err := host.FileChecksum(bin)
	if err != nil {
		t.Fatal(err)
	}
	st, sent := run(func(st host.Status) bool { return st.Restarts >= 1 && st.LastError != "" })
	for _, w := range []string{`adapter plugin "file" refused`, "not the binary that was pinned", fmt.Sprintf("this one has %x", changed), "do not run it"} {
		if !strings.Contains(st.LastError, w) {
			t.Errorf("LastError %q lacks %q", st.LastError, w)
		}
	}
	if st.Running || st.Pid != 0 || sent != 0 {
		t.Errorf("the changed binary ran: running %v, pid %d, %d updates", st.Running, st.Pid, sent)
	}
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
			Checksum:   func() ([]byte, error) { return host.Pin(bin, nil) },
			Request:    *request(path),
			Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
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

// TestStampSame: the watch skips reading the file only when its stat
// proves it unchanged.
func TestStampSame(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	write := func(t *testing.T, path, data string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		first  time.Time // the file's modification time when first stamped
		change func(t *testing.T, path string)
		same   bool
	}{
		{name: "untouched, modified long before it was read", first: old, change: func(*testing.T, string) {}, same: true},
		{name: "untouched, but modified just before it was read", first: time.Now(), change: func(*testing.T, string) {}, same: false},
		{name: "untouched, modified a second before it was read", first: time.Now().Add(-time.Second), change: func(*testing.T, string) {}, same: true},
		{name: "untouched, modified a second before, time in whole seconds", first: time.Now().Add(-time.Second).Truncate(time.Second), change: func(*testing.T, string) {}, same: false},
		{name: "untouched, modified long before, time in whole seconds", first: old.Truncate(time.Second), change: func(*testing.T, string) {}, same: true},
		{name: "rewritten in place, same size, new time", first: old, change: func(t *testing.T, path string) {
			write(t, path, `{"instances": [2]}`, time.Now())
		}, same: false},
		{name: "rewritten in place, same size, time set back to the old one", first: old, change: func(t *testing.T, path string) {
			// What only a deliberate Chtimes does; it is missed, as make misses it.
			write(t, path, `{"instances": [2]}`, old)
		}, same: true},
		{name: "another file renamed into place, same size and time", first: old, change: func(t *testing.T, path string) {
			write(t, path+".tmp", `{"instances": [2]}`, old)
			if err := os.Rename(path+".tmp", path); err != nil {
				t.Fatal(err)
			}
		}, same: false},
		{name: "grown", first: old, change: func(t *testing.T, path string) {
			write(t, path, `{"instances": [1, 2]}`, old)
		}, same: false},
		{name: "removed", first: old, change: func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, same: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "instances.json")
			write(t, path, `{"instances": [1]}`, tt.first)
			first, err := stampOf(path)
			if err != nil {
				t.Fatal(err)
			}
			tt.change(t, path)
			now, _ := stampOf(path) // a removed file: no stamp, never the same
			if got := now.same(first); got != tt.same {
				t.Errorf("same = %v, want %v", got, tt.same)
			}
		})
	}
}
