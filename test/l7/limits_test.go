package l7

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/test/harness"
)

// The buckets refill at one token every 100 seconds, so no token comes
// back while a test runs.
const limitPolicy = `
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 1
  }
}
service "admin" {
  protocol = "http"
  binding "local" { name = "admin" }
  upstream "api" {
    local_port = 1
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  rate_limit "search" {
    requests_per_second = 0.01
    burst               = 3
    per_caller          = true
    match {
      path_prefix = "/search"
    }
  }
}
intention "*" "api" {
  action = "allow"
}
`

func TestRateLimit(t *testing.T) {
	m := start(t, limitPolicy,
		inst{id: "web-1", svc: "web"},
		inst{id: "admin-1", svc: "admin"},
		inst{id: "api-1", svc: "api", app: named("api-1")},
	)
	c := client(t)
	for i := range 3 {
		if code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/search?q="+strconv.Itoa(i)), nil); code != 200 {
			t.Fatalf("request %d within the burst: %d %q", i, code, body)
		}
	}
	code, body, h := do(t, c, "GET", m.url("web-1", "api", "/search?q=4"), nil)
	if code != http.StatusTooManyRequests || !strings.Contains(body, `rate limit "search"`) {
		t.Errorf("request past the burst: %d %q, want 429 naming the limit", code, body)
	}
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 100 {
		t.Errorf("Retry-After %q, want 1 to 100 seconds", h.Get("Retry-After"))
	}
	if code, _, _ := do(t, c, "GET", m.url("web-1", "api", "/other"), nil); code != 200 {
		t.Errorf("a request the limit does not match: %d, want 200", code)
	}
	if code, _, _ := do(t, c, "GET", m.url("admin-1", "api", "/search"), nil); code != 200 {
		t.Errorf("another caller, with its own bucket: %d, want 200", code)
	}
}

func TestRateLimitGRPC(t *testing.T) {
	src := strings.ReplaceAll(strings.ReplaceAll(grpcPolicy, `route "check-canary"`, `rate_limit "checks" {
    requests_per_second = 0.01
    burst               = 2
    match {
      grpc_service = "grpc.health.v1.Health"
    }
  }
  route "check-canary"`), "on       = [\"unavailable\"]", "on       = [\"connect-failure\"]")
	m := start(t, src,
		inst{id: "web-1", svc: "web"},
		inst{id: "api-v1", svc: "api", meta: map[string]string{"version": "v1"}, serve: grpcApp("api-v1", false, new(atomic.Int64))},
	)
	hc := harness.HealthClient(t, strings.TrimPrefix(m.url("web-1", "api", ""), "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i := range 2 {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "checks") {
		t.Errorf("call past the burst: %v, want RESOURCE_EXHAUSTED naming the limit", err)
	}
}

// echo answers every line with the line.
func echo(ln net.Listener) {
	harness.Serve(ln, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(c, line)
		}
	})
}

// cappedEcho starts web-1 calling db-1, a TCP echo app whose service
// block holds limit (a circuit_breaker or connection_limit block), and
// returns the mesh and web-1's outbound address for db.
func cappedEcho(t *testing.T, limit string) (*mesh, string) {
	t.Helper()
	src := `
service "web" {
  binding "local" { name = "web" }
  upstream "db" {
    local_port = 1
  }
}
service "db" {
  binding "local" { name = "db" }` + limit + `
}
intention "web" "db" {
  action = "allow"
}
`
	m := start(t, src, inst{id: "web-1", svc: "web"}, inst{id: "db-1", svc: "db", serve: echo})
	return m, strings.TrimPrefix(m.url("web-1", "db", ""), "http://")
}

// echoOnce sends a line on a connection to an echo app and reads it back.
func echoOnce(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		t.Errorf("echo %q", line)
	}
	return err
}

// twoOfThree opens three connections to addr, an echo upstream capped at
// two by what: the first two must echo, the third must not. It returns
// the three, closed at the end of the test.
func twoOfThree(t *testing.T, addr, what string) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := range 3 {
		c, err := net.DialTimeout("tcp", addr, wait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
		err = echoOnce(t, c)
		if i < 2 && err != nil {
			t.Fatalf("connection %d within the %s: %v", i, what, err)
		}
		if i == 2 && err == nil {
			t.Fatalf("a third connection passed a %s of 2", what)
		}
	}
	return conns
}

func TestConnectionLimit(t *testing.T) {
	_, addr := cappedEcho(t, `
  connection_limit {
    max = 2
  }`)
	conns := twoOfThree(t, addr, "connection limit")
	conns[0].Close()
	// The freed slot takes a new connection once the sidecar sees the close.
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, wait)
		if err != nil {
			t.Fatal(err)
		}
		err = echoOnce(t, c)
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection passed after one of the two closed")
		}
	}
}
