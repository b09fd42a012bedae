package l7

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// buildBinaries builds weft, weft-proxy and the demo app into dir.
func buildBinaries(t *testing.T, dir string) {
	t.Helper()
	for out, pkg := range map[string]string{
		"weft": "./cmd/weft", "weft-proxy": "./cmd/weft-proxy", "weft-demo-app": "./examples/local/demoapp",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = "../.."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, b)
		}
	}
}

// controllerStatus is the part of GET /v1/status this test reads.
type controllerStatus struct {
	PolicyError string `json:"policy_error"`
	Instances   []struct {
		ID      string `json:"id"`
		Service string `json:"service"`
		Address string `json:"address"`
	} `json:"instances"`
	Sidecars []struct {
		Instance     string `json:"instance"`
		Version      uint64 `json:"version"`
		AckedVersion uint64 `json:"acked_version"`
	} `json:"sidecars"`
}

func reloadPolicy(gen int) string {
	route := fmt.Sprintf(`
  route "gen-%d" {
    match {
      path_prefix = "/"
    }
    request_headers {
      set = { "x-generation" = "%d" }
    }
    retry {
      attempts = 2
    }
  }`, gen, gen)
	if gen%2 == 1 {
		route = fmt.Sprintf(`
  route "gen-%d" {
    split "v1" {
      weight = 100
    }
    timeouts {
      request = "%ds"
    }
  }`, gen, 5+gen)
	}
	return `
service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "api" {
    local_port = 9001
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  subset "v1" {
    meta = { version = "v1" }
  }
` + route + `
}
intention "client" "api" {
  action = "allow"
}
`
}

// TestControllerReloadUnderLoad runs the real controller, local adapter and
// sidecars, rewrites the policy file twenty times while four clients call
// without pause, waits after each change until the calling sidecar has
// acknowledged the new configuration, and checks that no call failed.
func TestControllerReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the controller")
	}
	bin := t.TempDir()
	buildBinaries(t, bin)
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policy")
	os.MkdirAll(policyDir, 0o755)
	write := func(gen int) {
		// Write aside and rename, so the controller never reads half a file.
		tmp := filepath.Join(dir, "policy.tmp")
		if err := os.WriteFile(tmp, []byte(reloadPolicy(gen)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(policyDir, "policy.hcl")); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	workloads := filepath.Join(dir, "workloads.hcl")
	app := filepath.Join(bin, "weft-demo-app")
	os.WriteFile(workloads, []byte(fmt.Sprintf(`
service "client" {
  command = %q
  port    = 8080
}
service "api" {
  command   = %q
  port      = 8080
  instances = 2
  meta      = { version = "v1" }
}
`, app, app)), 0o644)

	admin, listen := freeAddr(t), freeAddr(t)
	dataDir := filepath.Join(dir, "data")
	var out logBuf
	cmd := exec.Command(filepath.Join(bin, "weft"), "controller", "--data-dir", dataDir, "--listen", listen, "--admin", admin,
		"--proxy-binary", filepath.Join(bin, "weft-proxy"), "--policy-poll", "100ms",
		"--policy-dir", policyDir, "--adapter", "local="+workloads,
		"--adapter-option", "local.first_address=127.0.78.2",
		"--adapter-option", "local.isolation=none") // the test calls through client's sidecar as its app
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("the controller did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			t.Logf("controller log:\n%s", out.String())
		}
	})

	status := func() (*controllerStatus, error) {
		var s controllerStatus
		return &s, harness.Remote(admin, dataDir).Call("GET", "/v1/status", nil, &s)
	}
	waitFor := func(what string, timeout time.Duration, cond func(*controllerStatus) bool) *controllerStatus {
		t.Helper()
		deadline := time.Now().Add(timeout)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				t.Fatalf("the controller exited while waiting for %s", what)
			case <-tick.C:
			}
			if s, err := status(); err == nil && cond(s) {
				return s
			}
		}
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
	clientVersion := func(s *controllerStatus) (uint64, bool) {
		for _, sc := range s.Sidecars {
			if strings.HasPrefix(sc.Instance, "client") {
				return sc.Version, sc.AckedVersion == sc.Version && sc.Version > 0
			}
		}
		return 0, false
	}
	s := waitFor("the mesh to converge", 90*time.Second, func(s *controllerStatus) bool {
		if len(s.Instances) != 3 || len(s.Sidecars) != 3 {
			return false
		}
		for _, sc := range s.Sidecars {
			if sc.Version == 0 || sc.AckedVersion != sc.Version {
				return false
			}
		}
		return true
	})
	var clientAddr string
	for _, in := range s.Instances {
		if in.Service == "client" {
			clientAddr = in.Address
		}
	}
	url := "http://" + net.JoinHostPort(clientAddr, "9001") + "/"
	c := client(t)
	eventually(t, "the first call through the client's sidecar", func() bool {
		code, _, _, err := try(c, "GET", url, nil)
		return err == nil && code == 200
	})

	var (
		stop          atomic.Bool
		total, failed atomic.Int64
		firstErr      atomic.Value
		wg            sync.WaitGroup
	)
	for range 4 {
		lc := client(t)
		wg.Go(func() {
			for !stop.Load() {
				code, body, _, err := try(lc, "GET", url, nil)
				total.Add(1)
				var got struct{ Service string }
				if err == nil && code == 200 {
					err = json.Unmarshal([]byte(body), &got)
				}
				if err != nil || code != 200 || got.Service != "api" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d body %q error %v", code, body, err))
				}
			}
		})
	}
	for gen := 1; gen <= 20; gen++ {
		before, _ := clientVersion(s)
		write(gen)
		s = waitFor(fmt.Sprintf("change %d to reach the client's sidecar", gen), 30*time.Second, func(s *controllerStatus) bool {
			v, acked := clientVersion(s)
			return s.PolicyError == "" && acked && v > before
		})
	}
	stop.Store(true)
	wg.Wait()
	if f := failed.Load(); f > 0 || total.Load() == 0 {
		t.Errorf("%d of %d calls failed across 20 policy changes; first: %v", f, total.Load(), firstErr.Load())
	}
	t.Logf("%d calls, 20 policy changes applied through the controller, %d failed", total.Load(), failed.Load())
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
