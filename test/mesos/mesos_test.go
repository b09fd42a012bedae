package mesos

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/mesossim"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.MeshBinaries(map[string]string{"weft-mesos-framework": "./examples/mesos/framework"}), func(dir string) error {
		binDir = dir
		// The simulator's tasks run with this PATH: examples/mesos/apps.json
		// names weft-demo-app as a user's PATH would have it.
		return os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}))
}

// stopGrace is how long a process has to stop after SIGTERM at cleanup.
const stopGrace = 30 * time.Second

// startProcess starts one of the built binaries, stopped at cleanup.
func startProcess(t *testing.T, name string, args ...string) *harness.Process {
	t.Helper()
	return harness.Start(t, name, exec.Command(filepath.Join(binDir, name), args...), harness.Options{Grace: stopGrace})
}

// meshOf: want instances per service, all known, and every sidecar has
// acknowledged its current configuration; excluded IDs are gone.
func meshOf(want map[string]int, gone ...string) func(*harness.Status) bool {
	return func(s *harness.Status) bool {
		got := map[string]int{}
		for _, in := range s.Instances {
			got[in.Service]++
			for _, g := range gone {
				if in.ID == g {
					return false
				}
			}
		}
		total := 0
		for svc, n := range want {
			if got[svc] != n {
				return false
			}
			total += n
		}
		if len(s.Instances) != total || len(s.Sidecars) != total {
			return false
		}
		for _, sc := range s.Sidecars {
			for _, g := range gone {
				if sc.Instance == g {
					return false
				}
			}
		}
		return s.Acked()
	}
}

// gone: the instance is in no snapshot and has no sidecar, and every
// sidecar left has acknowledged a configuration compiled without it.
func gone(id string) func(*harness.Status) bool {
	return func(s *harness.Status) bool {
		for _, in := range s.Instances {
			if in.ID == id {
				return false
			}
		}
		for _, sc := range s.Sidecars {
			if sc.Instance == id {
				return false
			}
		}
		return s.Acked()
	}
}

func instancesOf(s *harness.Status, service string) []string {
	var out []string
	for _, in := range s.Instances {
		if in.Service == service {
			out = append(out, in.ID)
		}
	}
	return out
}

// callAPI asks the frontend's app to call the api through its sidecar;
// the api answers with its caller's identity, as its sidecar verified it.
func callAPI(s *harness.Status) (int, string, error) {
	for _, in := range s.Instances {
		if in.Service != "frontend" {
			continue
		}
		url := "http://" + net.JoinHostPort(in.Address, strconv.Itoa(in.Ports["app"])) + "/call/api"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return harness.Get(ctx, url)
	}
	return 0, "", fmt.Errorf("no frontend instance")
}

func mustCall(t *testing.T, c *harness.Controller, what string) {
	t.Helper()
	s, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := callAPI(s)
	var answer harness.DemoAnswer
	if err == nil {
		err = json.Unmarshal([]byte(body), &answer)
	}
	// The api's sidecar verified the caller's certificate over mTLS.
	if err != nil || code != 200 || answer.Response.Caller != "spiffe://weft.local/ns/default/svc/frontend" || answer.Response.Service != "api" {
		t.Fatalf("%s: frontend -> api: %d %s %v", what, code, body, err)
	}
}

func TestMesosMesh(t *testing.T) {
	dir := t.TempDir()
	// The masters require HTTP Basic auth, as a master started with
	// --authenticate_http_readwrite does.
	pwFile := filepath.Join(dir, "mesos-password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim, err := mesossim.Start(mesossim.Options{Masters: 2, HeartbeatInterval: time.Second, User: "weft", Password: "s3cret",
		RecoveryPeriod: 300 * time.Millisecond, OfferInterval: 100 * time.Millisecond, WorkDir: filepath.Join(dir, "sandboxes"), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	// The example's own policy and apps.
	policyDir, apps, dataDir := filepath.Join("..", "..", "examples", "mesos", "policy"),
		filepath.Join("..", "..", "examples", "mesos", "apps.json"), filepath.Join(dir, "data")
	listen, admin := harness.FreeAddr(t), harness.FreeAddr(t)
	// Only the first master is named: the adapter finds the leader by
	// following redirects.
	ctl := harness.StartController(t, harness.ControllerOptions{
		Binary: filepath.Join(binDir, "weft"), DataDir: dataDir, Listen: listen, Admin: admin,
		Args: []string{"--policy-dir", policyDir,
			"--adapter", "mesos=" + sim.URLs()[0],
			"--adapter-option", "mesos.user=weft", "--adapter-option", "mesos.password_file=" + pwFile},
		Process: harness.Options{Grace: stopGrace}})
	ctl.WaitFor(t, "the controller and its mesos adapter", 30*time.Second, func(s *harness.Status) bool {
		return len(s.Adapters) == 1 && s.Adapters[0].Running
	})

	fw := startProcess(t, "weft-mesos-framework", "--master", strings.Join(sim.URLs(), ","),
		"--controller-admin", "https://"+admin, "--admin-token-file", filepath.Join(dataDir, "admin.token"),
		"--controller", listen, "--trust-bundle", ctl.CACert(),
		"--proxy", filepath.Join(binDir, "weft-proxy"), "--apps", apps,
		"--mesos-user", "weft", "--mesos-password-file", pwFile)

	want := map[string]int{"frontend": 1, "api": 2}
	s := ctl.WaitFor(t, "frontend and two api instances with their sidecars", 60*time.Second, meshOf(want))
	mustCall(t, ctl, "after the first deployment")

	// Each instance is a task group on its own loopback address.
	addrs := map[string]bool{}
	for _, in := range s.Instances {
		if addrs[in.Address] || !strings.HasPrefix(in.Address, "127.") {
			t.Fatalf("instance %s at %s: want a loopback address of its own", in.ID, in.Address)
		}
		addrs[in.Address] = true
	}

	// A crashed api task leaves every sidecar within two seconds.
	victim := instancesOf(s, "api")[0]
	crashed := time.Now()
	if err := sim.CrashTask(victim); err != nil {
		t.Fatal(err)
	}
	// (The framework may have replaced it already: the replacement is
	// not waited for here.)
	ctl.WaitFor(t, "the crashed task gone from every sidecar", 2*time.Second, gone(victim))
	t.Logf("crashed task %s left every sidecar after %v", victim, time.Since(crashed).Round(time.Millisecond))
	mustCall(t, ctl, "with one api instance left")

	// The framework replaces it.
	s = ctl.WaitFor(t, "the framework's replacement", 30*time.Second, meshOf(want, victim))
	mustCall(t, ctl, "after the replacement")

	// A failover: the adapter and the framework follow the new leader;
	// the mesh keeps working meanwhile, and afterwards.
	if err := sim.SetLeader(1); err != nil {
		t.Fatal(err)
	}
	mustCall(t, ctl, "during the failover")
	victim = instancesOf(s, "api")[0]
	if err := sim.CrashTask(victim); err != nil {
		t.Fatal(err)
	}
	ctl.WaitFor(t, "a replacement launched through the new leader", 30*time.Second, meshOf(want, victim))
	mustCall(t, ctl, "after the failover")

	// Stopping the framework stops its tasks, and they leave the mesh.
	fw.StopWithin(t, 30*time.Second)
	ctl.WaitFor(t, "every instance gone", 30*time.Second, meshOf(map[string]int{}))
	if n := len(sim.Tasks()); n != 0 {
		t.Fatalf("%d tasks still active after the framework stopped: %+v", n, sim.Tasks())
	}
}
