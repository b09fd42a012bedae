package l7

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

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
	bin := buildBinaries(t, nil)
	dir := t.TempDir()
	app := filepath.Join(bin, "weft-demo-app")
	cm := startControllerMesh(t, bin, dir, reloadPolicy(0),
		harness.Workload("client", app)+harness.Workload("api", app, "instances = 2", `meta      = { version = "v1" }`), "127.0.78.2", 3)
	write := func(gen int) {
		// Written aside and renamed, so the controller never reads half a file.
		harness.ReplaceFile(t, cm.PolicyFile, reloadPolicy(gen))
	}
	clientVersion := func(s *harness.Status) (uint64, bool) {
		for _, sc := range s.Sidecars {
			if strings.HasPrefix(sc.Instance, "client") {
				return sc.Version, sc.AckedVersion == sc.Version && sc.Version > 0
			}
		}
		return 0, false
	}
	s := cm.last
	clientAddr := s.Address("client")
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
		s = cm.WaitFor(t, fmt.Sprintf("change %d to reach the client's sidecar", gen), 30*time.Second, func(s *harness.Status) bool {
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
