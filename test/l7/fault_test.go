package l7

import (
	"math"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"
)

const faultPolicy = `
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 1
  }
}
service "other" {
  protocol = "http"
  binding "local" { name = "other" }
  upstream "api" {
    local_port = 1
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  route "slow" {
    match {
      path_prefix = "/slow"
    }
    fault {
      delay         = "20ms"
      delay_percent = 50
    }
  }
  route "chaos" {
    fault {
      abort_status  = 503
      abort_percent = 30
      callers       = ["web"]
    }
  }
}
intention "*" "api" {
  action = "allow"
}
`

// within says whether got is within six standard deviations of n
// Bernoulli trials at p: a false failure has a probability below 1e-8.
func within(t *testing.T, what string, got, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	tol := math.Ceil(6 * math.Sqrt(float64(n)*p*(1-p)))
	if math.Abs(float64(got)-mean) > tol {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f", what, got, n, mean, tol)
	}
}

func TestFaultAbort(t *testing.T) {
	m := start(t, faultPolicy,
		inst{id: "web-1", svc: "web"}, inst{id: "other-1", svc: "other"},
		inst{id: "api-1", svc: "api", app: named("api-1")})
	c := client(t)
	const n = 1000
	aborted := 0
	for range n {
		code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/"), nil)
		switch code {
		case 503:
			aborted++
		case 200:
		default:
			t.Fatalf("status %d %q", code, body)
		}
	}
	within(t, "aborted requests", aborted, n, 0.30)
	for range 100 {
		if code, body, _ := do(t, c, "GET", m.url("other-1", "api", "/"), nil); code != 200 {
			t.Fatalf("a caller the fault does not name got %d %q", code, body)
		}
	}
}

var delayed = regexp.MustCompile(`weft_faults_injected_total\{kind="delay",peer="api"\} (\d+)`)

func TestFaultDelay(t *testing.T) {
	m := start(t, faultPolicy, inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: named("api-1")})
	c := client(t)
	const n = 200
	begin := time.Now()
	for range n {
		if code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/slow"), nil); code != 200 {
			t.Fatalf("status %d %q", code, body)
		}
	}
	took := time.Since(begin)
	rec := httptest.NewRecorder()
	m.get("web-1").proxy.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	match := delayed.FindStringSubmatch(rec.Body.String())
	if match == nil {
		t.Fatalf("no delay count in the metrics:\n%s", rec.Body)
	}
	count, _ := strconv.Atoi(match[1])
	within(t, "delayed requests", count, n, 0.50)
	// A lower bound only: each delayed request waited at least 20ms.
	if min := time.Duration(count) * 20 * time.Millisecond; took < min {
		t.Errorf("%d delayed requests took %v in all, less than %v", count, took, min)
	}
}
