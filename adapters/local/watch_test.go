package local

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// TestWatchedStatuses: a watcher reports what the owner recorded, at the
// owner's address, running only while the recorded pid still runs the
// recorded command line, with the owner's check status.
func TestWatchedStatuses(t *testing.T) {
	b, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Skip("no /proc: watching needs it, like adoption")
	}
	self := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	me := os.Getpid()
	specs := []instanceSpec{
		{ID: "api-0", Service: "api", Namespace: "default", Address: "127.0.0.9", Port: 8080},
		{ID: "api-1", Service: "api", Namespace: "default", Address: "127.0.0.10", Port: 8080, Check: &checkSpec{}},
		{ID: "web-0", Service: "web", Namespace: "default", Address: "127.0.0.11", Port: 8080},
		{ID: "db-0", Service: "db", Namespace: "default", Address: "127.0.0.12", Port: 8080},
	}
	st := map[string]stateEntry{
		"api-0": {ID: "api-0", Service: "api", Namespace: "default", Address: "127.0.0.2",
			App: stateProc{PID: me, Argv: self}, Proxy: stateProc{PID: me, Argv: self}},
		"api-1": {ID: "api-1", Service: "api", Namespace: "default", Address: "127.0.0.3",
			App: stateProc{PID: me, Argv: self}, Proxy: stateProc{PID: me, Argv: []string{"/bin/other"}}, Check: checkPassing},
		// Recorded for another service: a stale record, not reported.
		"web-0": {ID: "web-0", Service: "store", Namespace: "default", Address: "127.0.0.4"},
		// db-0 is not recorded yet: not reported.
	}
	got := watchedStatuses(specs, st)
	if len(got) != 2 {
		t.Fatalf("got %d statuses, want api-0 and api-1: %+v", len(got), got)
	}
	for _, c := range []struct {
		i          int
		addr       string
		app, proxy bool
		check      string
	}{
		{0, "127.0.0.2", true, true, ""},
		{1, "127.0.0.3", true, false, checkPassing},
	} {
		g := got[c.i]
		if g.Spec.Address != c.addr || g.AppRunning != c.app || g.ProxyRunning != c.proxy || g.Check.Status != c.check {
			t.Errorf("%s: address %s app %v proxy %v check %q; want %s %v %v %q", g.Spec.ID,
				g.Spec.Address, g.AppRunning, g.ProxyRunning, g.Check.Status, c.addr, c.app, c.proxy, c.check)
		}
	}
	snap, _ := translate(localState{statuses: got})
	if snap.Instances[0].Health != "passing" || snap.Instances[1].Health != "critical" {
		t.Errorf("health %s, %s; want passing (both run), critical (its sidecar does not)", snap.Instances[0].Health, snap.Instances[1].Health)
	}
}

// TestWatchOwner: an adapter with option watch reports what another
// adapter (the owner) runs, with the owner's addresses and pids, starts
// nothing itself, sees a process of the owner's die, and reports nothing
// once the owner has stopped its instances.
func TestWatchOwner(t *testing.T) {
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 2}, "")
	owner := newTestAdapter(t)
	// A restart waits long enough for the watcher to see the dead process.
	owner.minBackoff, owner.maxBackoff = time.Second, time.Second
	sdktest.ConfigureOK(t, owner, s.request(t))
	ownerEvents := watch(t, owner)
	ev := sdktest.WaitFor(t, ownerEvents, "the owner's instances passing", waitTimeout, allPassing("api-0", "api-1"))
	ownerPids := pids(ev)

	req := s.request(t)
	req.Mesh.DataDir = filepath.Join(s.dir, "watcher")
	req.Options[OptionWatch] = s.dataDir
	watcher := newTestAdapter(t)
	diags := sdktest.ConfigureOK(t, watcher, req)
	warned := false
	for _, d := range diags {
		warned = warned || d.Summary == "Isolation not known"
	}
	if !warned {
		t.Errorf("a watcher's diagnostics %+v lack the warning that it cannot see the guard", diags)
	}
	events := watch(t, watcher)
	wev := sdktest.WaitFor(t, events, "the watcher to report the owner's instances passing", waitTimeout, allPassing("api-0", "api-1"))
	if got := pids(wev); !reflect.DeepEqual(got, ownerPids) {
		t.Errorf("the watcher reports pids %v, the owner %v", got, ownerPids)
	}
	for i, in := range wev.Snapshot.Instances {
		if own := ev.Snapshot.Instances[i]; in.Address != own.Address || in.Workload["name"] != "api" || wev.Snapshot.Adapter != "local" ||
			in.Isolation != "none" || in.Node != own.Node {
			t.Errorf("the watcher reports %+v, the owner %+v", in, own)
		}
	}
	if _, err := os.Stat(filepath.Join(req.Mesh.DataDir, "local-state.json")); err == nil {
		t.Error("the watcher wrote a state file of its own")
	}

	// The owner's app api-1 dies: the watcher reports it critical, then
	// passing with the owner's new process.
	pid, _ := strconv.Atoi(ownerPids["api-1"][0])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sdktest.WaitFor(t, events, "the watcher to report api-1 critical", waitTimeout, func(ev sdk.WatchEvent) bool {
		return len(ev.Snapshot.Instances) == 2 && ev.Snapshot.Instances[1].Health == "critical"
	})
	wev = sdktest.WaitFor(t, events, "the watcher to report api-1 passing again", waitTimeout, allPassing("api-0", "api-1"))
	if got := pids(wev)["api-1"][0]; got == ownerPids["api-1"][0] {
		t.Errorf("api-1 passing with the dead pid %s", got)
	}

	// Closing the watcher stops nothing; closing the owner stops
	// everything, and a new watcher then reports no instance.
	if err := watcher.Close(); err != nil {
		t.Fatal(err)
	}
	ap, _ := strconv.Atoi(pids(wev)["api-0"][0])
	if !alive(ap) {
		t.Fatal("closing the watcher stopped the owner's app api-0")
	}
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	again := newTestAdapter(t)
	sdktest.ConfigureOK(t, again, req)
	sdktest.WaitFor(t, watch(t, again), "a watcher of a stopped owner to report no instance", waitTimeout, func(ev sdk.WatchEvent) bool {
		return len(ev.Snapshot.Instances) == 0
	})
}
