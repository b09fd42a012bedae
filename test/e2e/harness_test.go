package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.MeshBinaries(map[string]string{"grpcapp": "./test/e2e/grpcapp"}), func(dir string) error { binDir = dir; return nil }))
}

// startController starts the controller on the given addresses; it stops
// like Ctrl-C, and not stopping within 30s of SIGINT is a test error.
func startController(t *testing.T, dataDir, listen, admin string, args ...string) *harness.Controller {
	t.Helper()
	o := harness.WeftController(binDir, dataDir, listen, admin, args...)
	o.Process = harness.Options{Signal: os.Interrupt, Grace: 30 * time.Second, MustStop: true}
	return harness.StartController(t, o)
}

// startLocalMesh writes policy and the local adapter's workloads into a
// temporary directory and starts a controller on them, whose instances get
// loopback addresses from firstAddr on. It returns the controller and the
// policy directory. Isolation is off (local.isolation = none): the tests
// call through the client's sidecar as if they were its app.
func startLocalMesh(t *testing.T, policy, workloads, firstAddr string, args ...string) (*harness.Controller, string) {
	t.Helper()
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policy")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policyDir, "mesh.hcl"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	wl := filepath.Join(dir, "workloads.hcl")
	if err := os.WriteFile(wl, []byte(workloads), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl := startController(t, filepath.Join(dir, "data"), harness.FreeAddr(t), harness.FreeAddr(t),
		append([]string{"--policy-dir", policyDir, "--adapter", "local=" + wl,
			"--adapter-option", "local.first_address=" + firstAddr, "--adapter-option", "local.isolation=none"}, args...)...)
	return ctl, policyDir
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
