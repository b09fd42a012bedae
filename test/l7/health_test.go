package l7

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/core/proxy"
)

// orders counts the requests it serves (health checks apart), answers
// each with its name and the body it read, and keeps every POST body.
// While sick is set its /healthz answers 500; the process lives on.
type orders struct {
	name  string
	calls atomic.Int64
	sick  atomic.Bool
	mu    sync.Mutex
	posts map[string]int
}

func (o *orders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if o.sick.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
		return
	}
	o.calls.Add(1)
	b, _ := io.ReadAll(r.Body)
	if r.Method == "POST" {
		o.mu.Lock()
		if o.posts == nil {
			o.posts = map[string]int{}
		}
		o.posts[string(b)]++
		o.mu.Unlock()
	}
	io.WriteString(w, o.name+":"+string(b))
}

// twice lists the POST bodies an app got more than once.
func (o *orders) twice() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for b, n := range o.posts {
		if n > 1 {
			out = append(out, b)
		}
	}
	return out
}

// mixed sends n GETs and n POSTs (each with a small body of its own)
// through url and returns how many of each failed.
func mixed(t *testing.T, c *http.Client, url string, n int, tag string) (failedGET, failedPOST int) {
	t.Helper()
	for i := range n {
		for _, method := range []string{"GET", "POST"} {
			body := ""
			var rd io.Reader
			if method == "POST" {
				body = fmt.Sprintf("%s-order-%d", tag, i)
				rd = strings.NewReader(body)
			}
			req, err := http.NewRequest(method, url, rd)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s %d: %v", method, i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasSuffix(string(b), ":"+body) {
				t.Errorf("%s %d: %d %q", method, i, resp.StatusCode, b)
				if method == "GET" {
					failedGET++
				} else {
					failedPOST++
				}
			}
		}
	}
	return failedGET, failedPOST
}

// TestDeadAppRetriedElsewhere: api-1's app is dead behind its live
// sidecar; the sidecar answers the signal and the caller's sidecar sends
// each request, GET or POST, to api-2, whatever retry conditions the
// route names (or with no route at all). No request fails and none runs
// twice.
func TestDeadAppRetriedElsewhere(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name, blocks string
	}{
		{"no route", ""},
		{"route with the default retry", `
  route "all" {
    retry {}
  }`},
		{"route retrying 5xx only", `
  route "all" {
    retry {
      on = ["5xx"]
    }
  }`},
		{"route without retry", `
  route "all" {
    timeouts {
      request = "5s"
    }
  }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := &orders{name: "api-2"}
			m := start(t, policyFor(tc.blocks), inst{id: "web-1", svc: "web"},
				inst{id: "api-1", svc: "api"}, // no app: its port is closed
				inst{id: "api-2", svc: "api", app: live})
			g, p := mixed(t, client(t), m.url("web-1", "api", "/orders"), n, "x")
			t.Logf("%d GETs and %d POSTs, one of two instances' app dead: %d GETs and %d POSTs failed", n, n, g, p)
			if got := live.calls.Load(); got != 2*n {
				t.Errorf("api-2 served %d requests, want %d", got, 2*n)
			}
			if d := live.twice(); len(d) > 0 {
				t.Errorf("POSTs that ran twice: %q", d)
			}
		})
	}
	t.Run("grpc", func(t *testing.T) {
		var hits atomic.Int64
		m := start(t, strings.ReplaceAll(policyFor(""), `protocol = "http"`, `protocol = "grpc"`), inst{id: "web-1", svc: "web"},
			inst{id: "api-1", svc: "api"},
			inst{id: "api-2", svc: "api", serve: grpcApp("api-2", false, &hits)})
		addr := strings.TrimPrefix(m.url("web-1", "api", ""), "http://")
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		failed := 0
		for i := range n {
			if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				failed++
				t.Errorf("call %d: %v", i, err)
			}
		}
		t.Logf("%d gRPC calls, one of two instances' app dead: %d failed", n, failed)
		if got := hits.Load(); got != n {
			t.Errorf("api-2 served %d calls, want %d", got, n)
		}
	})
}

// reportCh records a sidecar's reports of its app's health.
type reportCh chan bool

func (r reportCh) ReportHealth(healthy bool, _ string) {
	select {
	case r <- healthy:
	default:
	}
}

// await waits (bounded) for a report of the given health.
func (r reportCh) await(t *testing.T, healthy bool) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case h := <-r:
			if h == healthy {
				return
			}
		case <-timer.C:
			t.Fatalf("no report healthy=%v within %v", healthy, wait)
		}
	}
}

var _ proxy.HealthReporter = reportCh(nil)

// TestHealthCheckTakesInstanceOut: api-1's health path answers 500 while
// its process lives. Its sidecar's check (the policy's health_check
// block) takes it out within interval x unhealthy_threshold, and from
// then on it gets no request, while every GET and POST from web succeeds
// on api-2; when the path passes again, api-1 takes traffic again.
func TestHealthCheckTakesInstanceOut(t *testing.T) {
	const interval, threshold = 200 * time.Millisecond, 2
	sick, well := &orders{name: "api-1"}, &orders{name: "api-2"}
	reports := make(reportCh, 64)
	m := start(t, policyFor(fmt.Sprintf(`
  health_check {
    http                = "/healthz"
    expect_status       = 200
    interval            = "%v"
    timeout             = "%v"
    unhealthy_threshold = %d
    healthy_threshold   = 1
  }`, interval, interval, threshold)), inst{id: "web-1", svc: "web"},
		inst{id: "api-1", svc: "api", app: sick, health: reports},
		inst{id: "api-2", svc: "api", app: well})
	reports.await(t, true) // the first probe passed
	c := client(t)
	url := m.url("web-1", "api", "/orders")
	if g, p := mixed(t, c, url, 10, "before"); g+p > 0 {
		t.Fatalf("before the check fails: %d GETs and %d POSTs failed", g, p)
	}
	if sick.calls.Load() == 0 {
		t.Fatal("api-1 got no request while healthy")
	}

	began := time.Now()
	sick.sick.Store(true)
	reports.await(t, false)
	took := time.Since(began)
	t.Logf("api-1 taken out %v after its health path began to answer 500 (interval %v x unhealthy_threshold %d = %v)",
		took.Round(time.Millisecond), interval, threshold, interval*threshold)
	if limit := interval*threshold + time.Second; took > limit {
		t.Errorf("taken out after %v, want within %v (plus scheduling slack)", took, limit)
	}
	before := sick.calls.Load()
	g, p := mixed(t, c, url, 50, "during")
	t.Logf("while api-1 fails its check: %d GETs and %d POSTs of 50 each failed; api-1 served %d", g, p, sick.calls.Load()-before)
	if got := sick.calls.Load() - before; got != 0 {
		t.Errorf("api-1 served %d requests while its check failed", got)
	}
	if d := well.twice(); len(d) > 0 {
		t.Errorf("POSTs that ran twice: %q", d)
	}

	sick.sick.Store(false)
	reports.await(t, true)
	before = sick.calls.Load()
	if g, p := mixed(t, c, url, 10, "after"); g+p > 0 {
		t.Errorf("after the check passes again: %d GETs and %d POSTs failed", g, p)
	}
	if sick.calls.Load() == before {
		t.Error("api-1 got no request once its check passed again")
	}
}
