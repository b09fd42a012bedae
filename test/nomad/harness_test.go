package nomad

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
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

	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "weft-nomad-e2e-bin-")
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
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Dir = "../.."
			if b, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, b)
				return 1
			}
		}
		if _, err := nomadtest.Binary(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// controller is a `weft controller` process running the nomad adapter.
type controller struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
	args    []string
	dataDir string
	listen  string
	admin   string
}

func startController(t *testing.T, dataDir, listen, admin string, args ...string) *controller {
	t.Helper()
	c := &controller{t: t, out: &syncBuffer{}, exited: make(chan struct{}), args: args, dataDir: dataDir, listen: listen, admin: admin}
	all := append([]string{"controller", "--data-dir", dataDir, "--listen", listen, "--admin", admin,
		"--proxy-binary", filepath.Join(binDir, "weft-proxy"), "--policy-poll", "100ms"}, args...)
	c.cmd = exec.Command(filepath.Join(binDir, "weft"), all...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.Env = append(os.Environ(), "NOMAD_TOKEN=")
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("controller log:\n%s", c.out.String())
		}
	})
	return c
}

func (c *controller) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *controller) restart() *controller {
	c.stop()
	return startController(c.t, c.dataDir, c.listen, c.admin, c.args...)
}

type status struct {
	Adapters []struct {
		Name      string `json:"name"`
		Running   bool   `json:"running"`
		LastError string `json:"last_error"`
	} `json:"adapters"`
	Instances []struct {
		Adapter  string         `json:"adapter"`
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

// waitFor polls the controller's status until cond holds.
func (c *controller) waitFor(what string, timeout time.Duration, cond func(*status) bool) *status {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			c.t.Fatalf("controller exited while waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
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
	c.t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, last)
	return nil
}

// converged: want instances known and passing (their allocations run),
// each with a sidecar that acknowledged its current configuration.
func converged(want int) func(*status) bool {
	return func(s *status) bool {
		if len(s.Instances) != want || len(s.Sidecars) != want {
			return false
		}
		for _, in := range s.Instances {
			if in.Health != "passing" {
				return false
			}
		}
		for _, sc := range s.Sidecars {
			if sc.Version == 0 || sc.AckedVersion != sc.Version {
				return false
			}
		}
		return true
	}
}
