package l7

import (
	"math"
	"net/http"
	"strings"
	"testing"
)

const routingPolicy = `
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

  route "canary-header" {
    match {
      header "x-canary" {
        exact = "1"
      }
    }
    match {
      path_prefix = "/beta/"
    }
    match {
      path_regex = "/items/[0-9]+/v2"
      methods    = ["GET"]
    }
    match {
      query "version" {
        exact = "2"
      }
    }
    split "v2" {
      weight = 100
    }
  }

  route "split" {
    split "v1" {
      weight = 90
    }
    split "v2" {
      weight = 10
    }
  }
}

intention "web" "api" {
  action = "allow"
}
`

func routingMesh(t *testing.T, src string) *mesh {
	return start(t, src,
		inst{id: "web-1", svc: "web"},
		inst{id: "api-v1-a", svc: "api", meta: map[string]string{"version": "v1"}, app: named("api-v1-a")},
		inst{id: "api-v1-b", svc: "api", meta: map[string]string{"version": "v1"}, app: named("api-v1-b")},
		inst{id: "api-v2", svc: "api", meta: map[string]string{"version": "v2"}, app: named("api-v2")},
	)
}

// TestSplit sends n requests through a 90/10 split and checks that the
// share of v2 is within six standard deviations of 10%: a false failure
// has a probability below 1e-8.
func TestSplit(t *testing.T) {
	m := routingMesh(t, routingPolicy)
	c := client(t)
	const n = 2000
	const p = 0.10
	sd := math.Sqrt(n * p * (1 - p))
	tol := int(math.Ceil(6 * sd))
	counts := map[string]int{}
	for range n {
		code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/"), nil)
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		counts[body]++
	}
	v2 := counts["api-v2"]
	want := int(n * p)
	if v2 < want-tol || v2 > want+tol {
		t.Errorf("v2 took %d of %d requests, want %d ± %d (counts %v)", v2, n, want, tol, counts)
	}
	if counts["api-v1-a"] == 0 || counts["api-v1-b"] == 0 {
		t.Errorf("the v1 subset's two instances did not share its requests: %v", counts)
	}
	if got := counts["api-v1-a"] + counts["api-v1-b"] + v2; got != n {
		t.Errorf("answers from unknown instances: %v", counts)
	}
}

func TestMatches(t *testing.T) {
	m := routingMesh(t, routingPolicy)
	c := client(t)
	tests := []struct {
		name   string
		method string
		path   string
		hdr    http.Header
		wantV2 bool
	}{
		{"header", "GET", "/", http.Header{"X-Canary": {"1"}}, true},
		{"header with another value", "GET", "/", http.Header{"X-Canary": {"0"}}, false},
		{"path prefix", "GET", "/beta/x", nil, true},
		{"path prefix is not a substring", "GET", "/x/beta/", nil, false},
		{"regex and method", "GET", "/items/42/v2", nil, true},
		{"regex, other method", "POST", "/items/42/v2", nil, false},
		{"regex anchored", "GET", "/items/42/v2/more", nil, false},
		{"query", "GET", "/?version=2", nil, true},
		{"query with another value", "GET", "/?version=1", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A request that does not match may still land on v2 through the
			// 90/10 split: send 40 and expect v1 at least once, v2 never
			// for the matched requests. P(40 unmatched all on v2) = 1e-40.
			sawV1 := false
			for range 40 {
				code, body, _ := do(t, c, tt.method, m.url("web-1", "api", tt.path), tt.hdr)
				if code != 200 {
					t.Fatalf("status %d: %s", code, body)
				}
				if tt.wantV2 && body != "api-v2" {
					t.Fatalf("%s %s went to %s, want api-v2", tt.method, tt.path, body)
				}
				if body != "api-v2" {
					sawV1 = true
				}
			}
			if !tt.wantV2 && !sawV1 {
				t.Errorf("%s %s always went to v2; the canary route took it", tt.method, tt.path)
			}
		})
	}
}

func TestEmptySubset(t *testing.T) {
	m := start(t, routingPolicy,
		inst{id: "web-1", svc: "web"},
		inst{id: "api-v1", svc: "api", meta: map[string]string{"version": "v1"}, app: named("api-v1")},
	)
	code, body, _ := do(t, client(t), "GET", m.url("web-1", "api", "/beta/"), nil)
	if want := "no healthy instances of subset v2 of service api"; code != 503 || !strings.Contains(body, want) {
		t.Errorf("got %d %q, want 503 saying %q", code, body, want)
	}
}
