package mesos

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/mesossim"
)

// healthApps: the example's apps, with an HTTP health_check on the api.
const healthApps = `[
  {"service": "frontend", "instances": 1, "command": "UPSTREAM_API=http://$HOST:9001 exec weft-demo-app"},
  {"service": "api", "instances": 2, "command": "exec weft-demo-app", "health_check": {"path": "/healthz"}}
]`

// TestMesosHealthLifecycle takes api tasks that declare a health_check
// through their lifecycle: RUNNING with no result (no traffic), healthy
// (traffic), unhealthy (out within 2 s), killed (out within 2 s) and
// replaced (no traffic until healthy). Every step is asserted on the
// frontend sidecar's applied endpoint set, after every sidecar
// acknowledged its configuration, and with calls through the sidecars:
// a task that Mesos does not call healthy never answers one.
func TestMesosHealthLifecycle(t *testing.T) {
	dir := t.TempDir()
	sim, err := mesossim.Start(mesossim.Options{HeartbeatInterval: time.Second, OfferInterval: 100 * time.Millisecond,
		WorkDir: filepath.Join(dir, "sandboxes"), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	apps := filepath.Join(dir, "apps.json")
	if err := os.WriteFile(apps, []byte(healthApps), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	listen, admin := harness.FreeAddr(t), harness.FreeAddr(t)
	ctl := harness.StartController(t, harness.ControllerOptions{
		Binary: filepath.Join(binDir, "weft"), DataDir: dataDir, Listen: listen, Admin: admin,
		Args:    []string{"--policy-dir", filepath.Join("..", "..", "examples", "mesos", "policy"), "--adapter", "mesos=" + sim.URLs()[0]},
		Process: harness.Options{Grace: stopGrace}})
	ctl.WaitFor(t, "the controller and its mesos adapter", 30*time.Second, func(s *harness.Status) bool {
		return len(s.Adapters) == 1 && s.Adapters[0].Running
	})
	startProcess(t, "weft-mesos-framework", "--master", sim.URLs()[0],
		"--controller-admin", "https://"+admin, "--admin-token-file", filepath.Join(dataDir, "admin.token"),
		"--controller", listen, "--trust-bundle", ctl.CACert(),
		"--proxy", filepath.Join(binDir, "weft-proxy"), "--apps", apps)

	want := map[string]int{"frontend": 1, "api": 2}
	// apiHealth: the api instances are exactly want, with that health,
	// and every sidecar acknowledged its configuration.
	apiHealth := func(want map[string]string) func(*harness.Status) bool {
		return func(s *harness.Status) bool {
			got := map[string]string{}
			for _, in := range s.Instances {
				if in.Service == "api" {
					got[in.ID] = string(in.Health)
				}
			}
			if len(got) != len(want) {
				return false
			}
			for id, h := range want {
				if got[id] != h {
					return false
				}
			}
			return s.Acked()
		}
	}
	s := ctl.WaitFor(t, "frontend and two api tasks RUNNING with their sidecars", 60*time.Second, meshOf(want))
	apis := instancesOf(s, "api")
	slices.Sort(apis)
	a0, a1 := apis[0], apis[1]
	frontAdmin := sidecarAdmin(t, sim, "frontend")

	// endpointsWithin waits for the frontend sidecar's api endpoints to be
	// exactly want, and logs how long that took from since.
	endpointsWithin := func(what string, bound time.Duration, since time.Time, want ...string) {
		t.Helper()
		slices.Sort(want)
		harness.Eventually(t, what, bound, func() error {
			got, err := harness.SidecarEndpoints(frontAdmin, "api")
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("endpoints %v, want %v", got, want)
			}
			return err
		})
		t.Logf("%s: after %v", what, time.Since(since).Round(time.Millisecond))
	}
	// onlyAnswers: n calls through the sidecars, each answered by one of
	// want (none: every call fails, as no api endpoint is left).
	onlyAnswers := func(what string, n int, want ...string) {
		t.Helper()
		s, err := ctl.Status()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for range n {
			code, body, err := callAPI(s)
			var a harness.DemoAnswer
			if err == nil && code == 200 {
				if err := json.Unmarshal([]byte(body), &a); err != nil {
					t.Fatalf("%s: decoding %q: %v", what, body, err)
				}
				seen[a.Response.Instance]++
				continue
			}
			seen[""]++
		}
		for who, k := range seen {
			if who == "" && len(want) == 0 || slices.Contains(want, who) {
				continue
			}
			if who == "" {
				who = "a failed call"
			}
			t.Errorf("%s: %d of %d calls answered by %s, want only %v", what, k, n, who, want)
		}
		t.Logf("%s: answers %v", what, seen)
	}

	// 1. RUNNING, no health result yet: critical, in no caller's endpoints.
	ctl.WaitFor(t, "both api tasks critical: RUNNING, no health result", 10*time.Second, apiHealth(map[string]string{a0: "critical", a1: "critical"}))
	endpointsWithin("no api endpoint while no task is healthy", 5*time.Second, time.Now())
	onlyAnswers("no api task healthy", 10)

	// 2. One healthy: it alone gets the traffic; the other, RUNNING but
	// not yet healthy, gets none.
	t0 := time.Now()
	if err := sim.SetTaskHealth(a0, true); err != nil {
		t.Fatal(err)
	}
	endpointsWithin(a0+" healthy: in the frontend's endpoints within 2s", 2*time.Second, t0, a0)
	ctl.WaitFor(t, a0+" passing, every sidecar acknowledged", 5*time.Second, apiHealth(map[string]string{a0: "passing", a1: "critical"}))
	onlyAnswers(a1+" RUNNING but not yet healthy", 30, a0)

	// 3. Both healthy: both answer.
	t0 = time.Now()
	if err := sim.SetTaskHealth(a1, true); err != nil {
		t.Fatal(err)
	}
	endpointsWithin(a1+" healthy too", 2*time.Second, t0, a0, a1)
	onlyAnswers("both healthy", 20, a0, a1)

	// 4. Unhealthy: out of the endpoints within 2 s, and no more calls.
	t0 = time.Now()
	if err := sim.SetTaskHealth(a0, false); err != nil {
		t.Fatal(err)
	}
	endpointsWithin(a0+" unhealthy: out of the frontend's endpoints within 2s", 2*time.Second, t0, a1)
	ctl.WaitFor(t, a0+" critical, every sidecar acknowledged", 5*time.Second, apiHealth(map[string]string{a0: "critical", a1: "passing"}))
	onlyAnswers(a0+" unhealthy", 20, a1)

	// 5. Killed: out within 2 s; its replacement gets nothing before it is
	// healthy.
	t0 = time.Now()
	if err := sim.CrashTask(a1); err != nil {
		t.Fatal(err)
	}
	endpointsWithin(a1+" killed: out of the frontend's endpoints within 2s", 2*time.Second, t0)
	ctl.WaitFor(t, "the killed task gone from every sidecar", 5*time.Second, gone(a1))
	onlyAnswers("the healthy task killed, the other unhealthy", 10)
	var repl string
	s = ctl.WaitFor(t, "the framework's replacement RUNNING, critical (no health result)", 30*time.Second, func(s *harness.Status) bool {
		for _, in := range s.Instances {
			if in.Service == "api" && in.ID != a0 && in.ID != a1 {
				repl = in.ID
			}
		}
		return repl != "" && meshOf(want, a1)(s) && apiHealth(map[string]string{a0: "critical", repl: "critical"})(s)
	})
	endpointsWithin("the replacement not yet healthy: no api endpoint", 5*time.Second, time.Now())
	onlyAnswers("the replacement "+repl+" RUNNING but not yet healthy", 10)
	t0 = time.Now()
	if err := sim.SetTaskHealth(repl, true); err != nil {
		t.Fatal(err)
	}
	endpointsWithin("the replacement healthy: in the frontend's endpoints within 2s", 2*time.Second, t0, repl)
	onlyAnswers("the replacement healthy", 20, repl)
}

// sidecarAdmin is the admin address of the sidecar of service's one
// task group: the group's address and its sidecar task's admin port.
func sidecarAdmin(t *testing.T, sim *mesossim.Cluster, service string) string {
	t.Helper()
	for _, ti := range sim.Tasks() {
		if strings.HasPrefix(ti.ID, service+"-") && strings.HasSuffix(ti.ID, ".proxy") && ti.Ports["admin"] != 0 {
			return net.JoinHostPort(ti.Address, strconv.Itoa(int(ti.Ports["admin"])))
		}
	}
	t.Fatalf("no sidecar task of %s in %+v", service, sim.Tasks())
	return ""
}
