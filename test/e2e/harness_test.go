package e2e

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "weft-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		for out, pkg := range map[string]string{
			"weft":          "./cmd/weft",
			"weft-proxy":    "./cmd/weft-proxy",
			"weft-demo-app": "./examples/local/demoapp",
			"grpcapp":       "./test/e2e/grpcapp",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Dir = "../.."
			if b, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, b)
				return 1
			}
		}
		return m.Run()
	}())
}

// syncBuffer collects a process's output for assertions and failure logs.
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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type controller struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
	admin   string
	listen  string
	dataDir string
	args    []string
}

func startController(t *testing.T, dataDir, listen, admin string, args ...string) *controller {
	t.Helper()
	c := &controller{t: t, out: &syncBuffer{}, exited: make(chan struct{}), admin: admin, listen: listen, dataDir: dataDir, args: args}
	all := append([]string{"controller", "--data-dir", dataDir, "--listen", listen, "--admin", admin,
		"--proxy-binary", filepath.Join(binDir, "weft-proxy"), "--policy-poll", "100ms"}, args...)
	c.cmd = exec.Command(filepath.Join(binDir, "weft"), all...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	return c
}

func (c *controller) restart() *controller {
	return startController(c.t, c.dataDir, c.listen, c.admin, c.args...)
}

type status struct {
	Policy      string `json:"policy"`
	PolicyError string `json:"policy_error"`
	Adapters    []struct {
		Name      string `json:"name"`
		Pid       int    `json:"pid"`
		Running   bool   `json:"running"`
		Restarts  int    `json:"restarts"`
		LastError string `json:"last_error"`
	} `json:"adapters"`
	Instances []struct {
		ID       string         `json:"id"`
		Service  string         `json:"service"`
		Address  string         `json:"address"`
		Ports    map[string]int `json:"ports"`
		Health   string         `json:"health"`
		Identity string         `json:"identity"`
	} `json:"instances"`
	Sidecars []struct {
		Instance     string `json:"instance"`
		Version      uint64 `json:"version"`
		AckedVersion uint64 `json:"acked_version"`
	} `json:"sidecars"`
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

// waitFor polls the controller's status (its readiness signal) until cond
// holds, failing the test after timeout with the controller's log.
func (c *controller) waitFor(what string, timeout time.Duration, cond func(*status) bool) *status {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			c.t.Fatalf("controller exited while waiting for %s; its log:\n%s", what, c.out.String())
		case <-tick.C:
		}
		s, err := c.status()
		if err != nil {
			last = err
			continue
		}
		if cond(s) {
			return s
		}
	}
	c.t.Fatalf("timed out after %v waiting for %s (last error: %v); controller log:\n%s", timeout, what, last, c.out.String())
	return nil
}

// converged: every instance is known, and every instance's sidecar has
// acknowledged its current configuration.
func converged(want int) func(*status) bool {
	return func(s *status) bool {
		if len(s.Instances) != want || len(s.Sidecars) != want {
			return false
		}
		for _, sc := range s.Sidecars {
			if sc.Version == 0 || sc.AckedVersion != sc.Version {
				return false
			}
		}
		return true
	}
}

func (c *controller) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatal("controller did not die after SIGKILL")
	}
}

// stop interrupts the controller like Ctrl-C and waits for it to exit.
func (c *controller) stop() {
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		c.t.Errorf("controller did not stop within 30s of SIGINT; log:\n%s", c.out.String())
	}
}

func httpGet(ctx context.Context, url string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func pidAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func killPid(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// instancePids reads the pids of every app and sidecar from the local
// adapter's state file.
func instancePids(t *testing.T, dataDir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "adapters", "local", "local-state.json"))
	if err != nil {
		t.Fatalf("reading the local adapter's state: %v", err)
	}
	var st struct {
		Instances []struct {
			App   struct{ PID int } `json:"app"`
			Proxy struct{ PID int } `json:"proxy"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("decoding the local adapter's state: %v", err)
	}
	var pids []int
	for _, in := range st.Instances {
		pids = append(pids, in.App.PID, in.Proxy.PID)
	}
	return pids
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
