package l7

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// policyFor is a web -> api mesh whose api service has the given blocks.
func policyFor(apiBlocks string) string {
	return `
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
` + apiBlocks + `
}
intention "web" "api" {
  action = "allow"
}
`
}

// flaky fails every other request with 500 and counts what it saw.
func flaky(hits *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1)%2 == 1 {
			http.Error(w, "flaky: failing this one", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
}

func TestRetryRecovers(t *testing.T) {
	var hits atomic.Int64
	m := start(t, policyFor(`
  route "all" {
    retry {
      attempts = 2
      on       = ["5xx"]
      budget {
        percent        = 100
        min_per_second = 0
      }
    }
  }`), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: flaky(&hits)})
	c := client(t)
	const n = 100
	for i := range n {
		code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/"), nil)
		if code != 200 {
			t.Fatalf("request %d: status %d %q, want 200 after a retry", i, code, body)
		}
	}
	if got := hits.Load(); got != 2*n {
		t.Errorf("the app saw %d requests, want %d (each first try fails, each retry succeeds)", got, 2*n)
	}
}

func TestRetryWithoutPolicyFails(t *testing.T) {
	var hits atomic.Int64
	m := start(t, policyFor(""), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: flaky(&hits)})
	c := client(t)
	failed := 0
	for range 10 {
		if code, _, _ := do(t, c, "GET", m.url("web-1", "api", "/"), nil); code == 500 {
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d of 10 requests failed without a retry policy, want 5", failed)
	}
}

// TestRetryBudget: an app that always fails, three attempts a request, and
// a budget of 20% of requests with no minimum. Sequential requests inside
// the 10-second window get exactly 20 retries in all, not 200.
func TestRetryBudget(t *testing.T) {
	var hits atomic.Int64
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	m := start(t, policyFor(`
  route "all" {
    retry {
      attempts = 3
      on       = ["gateway-error"]
      budget {
        percent        = 20
        min_per_second = 0
      }
    }
  }`), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: down})
	c := client(t)
	const n = 100
	begin := time.Now()
	for range n {
		if code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/"), nil); code != 503 {
			t.Fatalf("status %d %q, want the app's 503", code, body)
		}
	}
	retries := hits.Load() - n
	// The window is 10 one-second buckets: within it the budget allows
	// exactly percent/100 * n retries. A slower run can only see fewer
	// requests in the window, hence fewer retries.
	if time.Since(begin) < 9*time.Second {
		if retries != n*20/100 {
			t.Errorf("%d retries for %d failing requests, want %d (20%%)", retries, n, n*20/100)
		}
	} else if retries > n*20/100 || retries == 0 {
		t.Errorf("%d retries for %d failing requests, want 1 to %d", retries, n, n*20/100)
	}
}

// hang waits for the request to go away, up to wait.
func hang(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(wait):
			}
		}
		w.Header().Set("X-Instance", name)
		fmt.Fprint(w, name)
	})
}

func TestRequestTimeout(t *testing.T) {
	m := start(t, policyFor(`
  timeouts {
    request = "5s"
  }
  route "slow" {
    match {
      path_prefix = "/slow"
    }
    timeouts {
      request = "200ms"
    }
  }`), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: hang("api-1")})
	c := client(t)
	code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/slow"), nil)
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "request timeout") {
		t.Errorf("got %d %q, want 504 naming the request timeout", code, body)
	}
	if code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/fast"), nil); code != 200 {
		t.Errorf("a fast request: %d %q, want 200", code, body)
	}
}

// TestPerTryTimeout: one instance hangs on /slow, the other answers; with
// a per-try timeout and two attempts every request gets an answer from
// the one that works.
func TestPerTryTimeout(t *testing.T) {
	var fastHits atomic.Int64
	fast := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fastHits.Add(1)
		fmt.Fprint(w, "api-fast")
	})
	m := start(t, policyFor(`
  route "all" {
    retry {
      attempts        = 2
      per_try_timeout = "100ms"
      on              = ["reset"]
      budget {
        percent = 100
      }
    }
    timeouts {
      request = "5s"
    }
  }`), inst{id: "web-1", svc: "web"},
		inst{id: "api-hang", svc: "api", app: hang("api-hang")},
		inst{id: "api-fast", svc: "api", app: fast})
	c := client(t)
	for i := range 10 {
		code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/slow"), nil)
		if code != 200 || body != "api-fast" {
			t.Fatalf("request %d: %d %q, want 200 from api-fast", i, code, body)
		}
	}
	if fastHits.Load() != 10 {
		t.Errorf("api-fast saw %d requests, want 10", fastHits.Load())
	}
}

func TestHeaderManipulation(t *testing.T) {
	m := start(t, policyFor(`
  route "all" {
    request_headers {
      set    = { "x-route" = "all" }
      add    = { "x-tenant" = "blue" }
      remove = ["x-debug"]
    }
    response_headers {
      set    = { "x-served-by" = "weft" }
      remove = ["server"]
    }
  }`), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "route=%s tenant=%s debug=%q", r.Header.Get("X-Route"), strings.Join(r.Header.Values("X-Tenant"), "+"), r.Header.Get("X-Debug"))
		w.Header().Set("Server", "app")
	})})
	code, body, h := do(t, client(t), "GET", m.url("web-1", "api", "/"), http.Header{
		"X-Route": {"mine"}, "X-Tenant": {"red"}, "X-Debug": {"1"},
	})
	if want := `route=all tenant=red+blue debug=""`; code != 200 || body != want {
		t.Errorf("the app saw %q (status %d), want %q", body, code, want)
	}
	if h.Get("Server") != "" || h.Get("X-Served-By") != "weft" {
		t.Errorf("response headers %v: want no Server and X-Served-By: weft", h)
	}
}

func TestL7Intentions(t *testing.T) {
	src := `
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
}
intention "web" "api" {
  permission {
    action = "deny"
    match {
      methods = ["DELETE"]
    }
  }
  permission {
    action = "allow"
    match {
      path_prefix = "/items/"
      methods     = ["GET", "DELETE", "PUT"]
    }
  }
  permission {
    action = "allow"
    match {
      header "x-admin" {
        exact = "yes"
      }
    }
  }
}
`
	m := start(t, src, inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: named("api-1")})
	c := client(t)
	tests := []struct {
		method, path string
		hdr          http.Header
		want         int
	}{
		{"GET", "/items/1", nil, 200},
		{"PUT", "/items/1", nil, 200},
		{"DELETE", "/items/1", nil, 403},
		{"DELETE", "/items/1", http.Header{"X-Admin": {"yes"}}, 403}, // the first permission wins
		{"GET", "/other", nil, 403},                                  // no permission matches: default deny
		{"GET", "/other", http.Header{"X-Admin": {"yes"}}, 200},
		{"POST", "/items/1", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, body, _ := do(t, c, tt.method, m.url("web-1", "api", tt.path), tt.hdr)
			if code != tt.want {
				t.Errorf("%s %s: %d %q, want %d", tt.method, tt.path, code, body, tt.want)
			}
			if code == 403 && !strings.Contains(body, "permission") && !strings.Contains(body, "default is deny") {
				t.Errorf("the refusal %q does not say which rule refused", body)
			}
		})
	}
}

// TestStreamTimeout: a request on which no byte moves for the stream
// timeout ends with 504, though the request timeout is far away.
func TestStreamTimeout(t *testing.T) {
	m := start(t, policyFor(`
  route "slow" {
    match {
      path_prefix = "/slow"
    }
    timeouts {
      request = "10s"
      stream  = "150ms"
    }
  }`), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: hang("api-1")})
	code, body, _ := do(t, client(t), "GET", m.url("web-1", "api", "/slow"), nil)
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "stream timeout") {
		t.Errorf("got %d %q, want 504 naming the stream timeout", code, body)
	}
}
