package l7

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadUnderLoad applies twenty route changes while four clients
// send requests without pause, and checks that no request fails and that
// every change took effect.
func TestReloadUnderLoad(t *testing.T) {
	policyTo := func(subset string, n int) string {
		return fmt.Sprintf(`
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 1
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  subset "v1" {
    meta = { version = "v1" }
  }
  subset "v2" {
    meta = { version = "v2" }
  }
  route "r%d" {
    match {
      path_prefix = "/"
    }
    split %q {
      weight = 100
    }
    request_headers {
      set = { "x-generation" = "%d" }
    }
  }
}
intention "web" "api" {
  action = "allow"
}
`, n, subset, n)
	}
	m := start(t, policyTo("v1", 0),
		inst{id: "web-1", svc: "web"},
		inst{id: "api-v1", svc: "api", meta: map[string]string{"version": "v1"}, app: named("api-v1")},
		inst{id: "api-v2", svc: "api", meta: map[string]string{"version": "v2"}, app: named("api-v2")},
	)
	url := m.url("web-1", "api", "/load")
	var (
		stop     atomic.Bool
		total    atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
		seen     sync.Map // body -> true
		done     = make(chan struct{}, 1024)
	)
	for range 4 {
		c := client(t)
		wg.Go(func() {
			for !stop.Load() {
				code, body, _, err := try(c, "GET", url, nil)
				total.Add(1)
				if err != nil || code != 200 {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d body %q error %v", code, body, err))
					continue
				}
				seen.Store(body, true)
				select {
				case done <- struct{}{}:
				default:
				}
			}
		})
	}
	// Each change waits until a request sees it, so all twenty are served.
	probe := client(t)
	for i := 1; i <= 20; i++ {
		subset := []string{"v1", "v2"}[i%2]
		m.apply(policyTo(subset, i))
		code, body, _ := do(t, probe, "GET", url, nil)
		if code != 200 || body != "api-"+subset {
			t.Fatalf("after change %d: %d %q, want api-%s", i, code, body, subset)
		}
		// Let the load run on this version for 50 requests.
		for range len(done) {
			<-done
		}
		timeout := time.After(wait)
		for range 50 {
			select {
			case <-done:
			case <-timeout:
				t.Fatalf("the load stalled after change %d", i)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Errorf("%d of %d requests failed across 20 route changes; first: %v", f, total.Load(), firstErr.Load())
	}
	for _, b := range []string{"api-v1", "api-v2"} {
		if _, ok := seen.Load(b); !ok {
			t.Errorf("the load never reached %s", b)
		}
	}
	t.Logf("%d requests, 20 route changes, %d failures", total.Load(), failures.Load())
}
