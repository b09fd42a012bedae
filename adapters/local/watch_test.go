package local

import (
	"os"
	"strings"
	"testing"
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
