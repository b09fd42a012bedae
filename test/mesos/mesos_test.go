package mesos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/mesossim"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "weft-mesos-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		for out, pkg := range map[string]string{
			"weft":                 "./cmd/weft",
			"weft-proxy":           "./cmd/weft-proxy",
			"weft-demo-app":        "./examples/local/demoapp",
			"weft-mesos-framework": "./examples/mesos/framework",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Dir = "../.."
			if b, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, b)
				return 1
			}
		}
		// The simulator's tasks run with this PATH: examples/mesos/apps.json
		// names weft-demo-app as a user's PATH would have it.
		os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		return m.Run()
	}())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// process is a started binary whose output is kept for failure logs.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *process) stop(t *testing.T, within time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("%s did not stop within %v of SIGTERM", p.name, within)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type status struct {
	Adapters []struct {
		Name      string `json:"name"`
		Running   bool   `json:"running"`
		LastError string `json:"last_error"`
	} `json:"adapters"`
	Instances []struct {
		ID      string         `json:"id"`
		Service string         `json:"service"`
		Address string         `json:"address"`
		Ports   map[string]int `json:"ports"`
	} `json:"instances"`
	Sidecars []struct {
		Instance     string `json:"instance"`
		Version      uint64 `json:"version"`
		AckedVersion uint64 `json:"acked_version"`
	} `json:"sidecars"`
}

type controller struct {
	*process
	admin, dataDir string
}

func (c *controller) status() (*status, error) {
	tok, err := os.ReadFile(filepath.Join(c.dataDir, "admin.token"))
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("GET", "http://"+c.admin+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status: %s", resp.Status)
	}
	var s status
	return &s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitFor polls the controller's status, its readiness signal, until cond
// holds, failing after timeout.
func (c *controller) waitFor(t *testing.T, what string, timeout time.Duration, cond func(*status) bool) *status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	var lastStatus *status
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			t.Fatalf("controller exited while waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
		s, err := c.status()
		if err != nil {
			last = err
			continue
		}
		lastStatus = s
		if cond(s) {
			return s
		}
	}
	b, _ := json.Marshal(lastStatus)
	t.Fatalf("timed out after %v waiting for %s (last error: %v); last status: %s", timeout, what, last, b)
	return nil
}

// meshOf: want instances per service, all known, and every sidecar has
// acknowledged its current configuration; excluded IDs are gone.
func meshOf(want map[string]int, gone ...string) func(*status) bool {
	return func(s *status) bool {
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
			if sc.Version == 0 || sc.AckedVersion != sc.Version {
				return false
			}
		}
		return true
	}
}

// gone: the instance is in no snapshot and has no sidecar, and every
// sidecar left has acknowledged a configuration compiled without it.
func gone(id string) func(*status) bool {
	return func(s *status) bool {
		for _, in := range s.Instances {
			if in.ID == id {
				return false
			}
		}
		for _, sc := range s.Sidecars {
			if sc.Instance == id || sc.Version == 0 || sc.AckedVersion != sc.Version {
				return false
			}
		}
		return true
	}
}

func instancesOf(s *status, service string) []string {
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
func callAPI(s *status) (int, string, error) {
	for _, in := range s.Instances {
		if in.Service != "frontend" {
			continue
		}
		url := "http://" + net.JoinHostPort(in.Address, strconv.Itoa(in.Ports["app"])) + "/call/api"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	return 0, "", fmt.Errorf("no frontend instance")
}

func mustCall(t *testing.T, c *controller, what string) {
	t.Helper()
	s, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := callAPI(s)
	var answer struct {
		Response struct {
			Caller  string `json:"caller"`
			Service string `json:"service"`
		} `json:"response"`
	}
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
	listen, admin := freeAddr(t), freeAddr(t)
	// Only the first master is named: the adapter finds the leader by
	// following redirects.
	ctl := &controller{admin: admin, dataDir: dataDir, process: startProcess(t, "weft", "controller",
		"--data-dir", dataDir, "--listen", listen, "--admin", admin, "--policy-dir", policyDir,
		"--adapter", "mesos="+sim.URLs()[0],
		"--adapter-option", "mesos.user=weft", "--adapter-option", "mesos.password_file="+pwFile)}
	ctl.waitFor(t, "the controller and its mesos adapter", 30*time.Second, func(s *status) bool {
		return len(s.Adapters) == 1 && s.Adapters[0].Running
	})

	fw := startProcess(t, "weft-mesos-framework", "--master", strings.Join(sim.URLs(), ","),
		"--controller-admin", "http://"+admin, "--admin-token-file", filepath.Join(dataDir, "admin.token"),
		"--controller", listen, "--trust-bundle", filepath.Join(dataDir, "ca", "ca.crt"),
		"--proxy", filepath.Join(binDir, "weft-proxy"), "--apps", apps,
		"--mesos-user", "weft", "--mesos-password-file", pwFile)

	want := map[string]int{"frontend": 1, "api": 2}
	s := ctl.waitFor(t, "frontend and two api instances with their sidecars", 60*time.Second, meshOf(want))
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
	ctl.waitFor(t, "the crashed task gone from every sidecar", 2*time.Second, gone(victim))
	t.Logf("crashed task %s left every sidecar after %v", victim, time.Since(crashed).Round(time.Millisecond))
	mustCall(t, ctl, "with one api instance left")

	// The framework replaces it.
	s = ctl.waitFor(t, "the framework's replacement", 30*time.Second, meshOf(want, victim))
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
	ctl.waitFor(t, "a replacement launched through the new leader", 30*time.Second, meshOf(want, victim))
	mustCall(t, ctl, "after the failover")

	// Stopping the framework stops its tasks, and they leave the mesh.
	fw.stop(t, 30*time.Second)
	ctl.waitFor(t, "every instance gone", 30*time.Second, meshOf(map[string]int{}))
	if n := len(sim.Tasks()); n != 0 {
		t.Fatalf("%d tasks still active after the framework stopped: %+v", n, sim.Tasks())
	}
}
