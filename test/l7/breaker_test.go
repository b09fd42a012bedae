package l7

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// metric reads one line of a sidecar's metrics, "" when absent.
func (m *mesh) metric(id, prefix string) string {
	rec := httptest.NewRecorder()
	m.get(id).proxy.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(line, prefix))
		}
	}
	return ""
}

// eventually polls cond every 5ms (harness.Poll) until it holds, and
// fails the test when wait passes first.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := harness.Poll(context.Background(), wait, 5*time.Millisecond, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestCircuitBreaker: with two requests in flight and one waiting, a
// fourth is refused at once with 503; the three others complete.
func TestCircuitBreaker(t *testing.T) {
	overload(t, `
  circuit_breaker {
    max_requests = 2
    max_pending  = 1
  }`, "2 requests in flight")
}

// overload runs api with the circuit_breaker block given, whose caps let
// two requests in and one wait: two requests are held in the app, a third
// waits, a fourth must get 503 with a body holding want, and the three
// others complete once the app lets go.
func overload(t *testing.T, breaker, want string) *mesh {
	t.Helper()
	gate := make(chan struct{})
	var inApp atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inApp.Add(1)
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "done")
	})
	m := start(t, policyFor(breaker), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: app})
	c := client(t)
	url := m.url("web-1", "api", "/")
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	send := func() {
		wg.Go(func() {
			code, _, _, err := try(c, "GET", url, nil)
			if err != nil {
				t.Error(err)
			}
			codes <- code
		})
	}
	send()
	send()
	eventually(t, "two requests in the app", func() bool { return inApp.Load() == 2 })
	send()
	eventually(t, "one request waiting", func() bool {
		return m.metric("web-1", `weft_circuit_breaker_pending{peer="api"}`) == "1"
	})
	code, body, h := do(t, c, "GET", url, nil)
	if code != 503 || h.Get("X-Weft-Overloaded") != "true" || !strings.Contains(body, want) {
		t.Errorf("fourth request: %d %q %v, want 503 from the circuit breaker saying %q", code, body, h, want)
	}
	close(gate)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("a request within the caps got %d", code)
		}
	}
	if inApp.Load() != 3 {
		t.Errorf("the app saw %d requests, want 3", inApp.Load())
	}
	return m
}

// TestOutlierDetection: an instance that fails three times in a row is
// ejected, gets no traffic while ejected, and comes back when the
// ejection time is over.
func TestOutlierDetection(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	var badHits atomic.Int64
	bad := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		if broken.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "api-bad")
	})
	m := start(t, policyFor(`
  outlier_detection {
    consecutive_5xx    = 3
    base_ejection_time = "300ms"
  }`), inst{id: "web-1", svc: "web"},
		inst{id: "api-bad", svc: "api", app: bad},
		inst{id: "api-good", svc: "api", app: named("api-good")})
	c := client(t)
	url := m.url("web-1", "api", "/")
	// Round robin: the bad one gets every other request until ejected.
	failures := 0
	for range 10 {
		if code, _, _ := do(t, c, "GET", url, nil); code == 500 {
			failures++
		}
	}
	if failures != 3 || badHits.Load() != 3 {
		t.Fatalf("%d failures, %d requests to the bad instance; want 3 and 3, then ejection", failures, badHits.Load())
	}
	for i := range 20 {
		if code, body, _ := do(t, c, "GET", url, nil); code != 200 || body != "api-good" {
			if badHits.Load() == 3 {
				t.Fatalf("request %d after ejection: %d %q", i, code, body)
			}
			break // the ejection ended (a slow run): checked below
		}
	}
	broken.Store(false)
	eventually(t, "the ejected instance to come back", func() bool {
		_, body, _ := do(t, c, "GET", url, nil)
		return body == "api-bad"
	})
}

// TestCircuitBreakerConnections: a TCP upstream capped at two connections
// closes a third at once.
func TestCircuitBreakerConnections(t *testing.T) {
	m, addr := cappedEcho(t, `
  circuit_breaker {
    max_connections = 2
  }`)
	twoOfThree(t, addr, "circuit breaker's max_connections")
	if got := m.metric("web-1", `weft_circuit_breaker_overflow_total{limit="max_connections",peer="db"}`); got != "1" {
		t.Errorf("overflow count %q, want 1", got)
	}
}

// TestCircuitBreakerHTTPConnections: an HTTP upstream capped at two
// connections carries two requests at once on two connections; a third
// waits for one of them (max_pending = 1), a fourth gets 503.
func TestCircuitBreakerHTTPConnections(t *testing.T) {
	m := overload(t, `
  circuit_breaker {
    max_connections = 2
    max_pending     = 1
  }`, "2 connections busy")
	if got := m.metric("web-1", `weft_circuit_breaker_overflow_total{limit="max_connections",peer="api"}`); got != "1" {
		t.Errorf("overflow count %q, want 1", got)
	}
	if got := m.metric("api-1", `weft_connections_total{direction="inbound",peer="web"}`); got != "2" {
		t.Errorf("api's sidecar accepted %q connections from web, want 2 (the cap)", got)
	}
}
