package health

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
)

// wait bounds every wait in these tests.
const wait = 10 * time.Second

// changes collects a checker's reports.
type changes chan State

func (c changes) next(t *testing.T, healthy bool) State {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case st := <-c:
			if st.Healthy == healthy {
				return st
			}
		case <-timer.C:
			t.Fatalf("no state healthy=%v within %v", healthy, wait)
		}
	}
}

func start(t *testing.T, cfg *meshapi.HealthCheck, addr string) (*Checker, changes) {
	t.Helper()
	ch := make(changes, 64)
	c, err := New(cfg, addr, meshapi.Protocol_PROTOCOL_HTTP, func(st State) { ch <- st })
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(c.Stop)
	return c, ch
}

func every(d time.Duration, unhealthy, healthy uint32, cfg *meshapi.HealthCheck) *meshapi.HealthCheck {
	cfg.Interval, cfg.Timeout = durationpb.New(d), durationpb.New(d)
	cfg.UnhealthyThreshold, cfg.HealthyThreshold = unhealthy, healthy
	return cfg
}

// TestThresholds: the app goes down after exactly unhealthy_threshold
// failed probes in a row and comes back after healthy_threshold passing
// ones.
func TestThresholds(t *testing.T) {
	var fail atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(204)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, ch := start(t, every(50*time.Millisecond, 3, 2, &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/healthz?deep=1"}), ln.Addr().String())
	if st := ch.next(t, true); !st.Checked || st.Successes != 1 {
		t.Errorf("first report %+v, want checked with one success", st)
	}
	fail.Store(true)
	down := ch.next(t, false)
	if down.Failures != 3 || !strings.Contains(down.Reason, "503") || !down.Down() {
		t.Errorf("down %+v, want after 3 failures naming the status", down)
	}
	fail.Store(false)
	up := ch.next(t, true)
	if up.Successes != 2 || up.Reason != "passing" {
		t.Errorf("up %+v, want after 2 successes", up)
	}
	if st := c.State(); !st.Healthy || st.Since.IsZero() || st.LastCheck.IsZero() {
		t.Errorf("state %+v", st)
	}
}

// TestTCPAndFail: a TCP check follows the listener; Fail takes the app
// down at once and the next probe, run without waiting out the interval,
// brings it back.
func TestTCPAndFail(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// A long interval: only Fail's kick can run the probe that follows it.
	c, ch := start(t, every(time.Hour, 1, 1, &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_TCP}), addr)
	ch.next(t, true)
	c.Fail("connecting to the application: connection refused")
	if st := ch.next(t, false); !strings.Contains(st.Reason, "refused") {
		t.Errorf("after Fail: %+v, want down at once with its reason", st)
	}
	ch.next(t, true) // the kicked probe found the listener

	_, ch2 := start(t, every(20*time.Millisecond, 2, 1, &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_TCP}), addr)
	ch2.next(t, true)
	ln.Close()
	if st := ch2.next(t, false); !strings.Contains(st.Reason, "tcp check") || st.Failures != 2 {
		t.Errorf("with the listener closed: %+v, want down after 2 failed connects", st)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *meshapi.HealthCheck
		ok   bool
	}{
		{"http", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/h"}, true},
		{"http relative", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "h"}, false},
		{"http with a newline", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/h\r\nX: y"}, false},
		{"http status 600", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/h", ExpectStatus: 600}, false},
		{"grpc", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_GRPC}, true},
		{"tcp", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_TCP}, true},
		{"no kind", &meshapi.HealthCheck{}, false},
		{"unknown kind", &meshapi.HealthCheck{Kind: 9}, false},
		{"negative interval", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_TCP, Interval: durationpb.New(-time.Second)}, false},
		{"threshold 101", &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_TCP, UnhealthyThreshold: 101}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate(tc.cfg); (err == nil) != tc.ok {
				t.Errorf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestGRPCBack: a gRPC app that stops and starts again on its port is
// seen down, then up at the next probes (not after gRPC's reconnect
// backoff).
func TestGRPCBack(t *testing.T) {
	serve := func(ln net.Listener) *grpc.Server {
		gs := grpc.NewServer()
		healthpb.RegisterHealthServer(gs, health.NewServer())
		go gs.Serve(ln)
		return gs
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	gs := serve(ln)
	_, ch := start(t, every(50*time.Millisecond, 1, 1, &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_GRPC}), addr)
	ch.next(t, true)
	gs.Stop()
	ch.next(t, false)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	gs = serve(ln)
	defer gs.Stop()
	began := time.Now()
	ch.next(t, true)
	took := time.Since(began)
	t.Logf("up again %v after the restart (probes every 50ms)", took.Round(time.Millisecond))
	// gRPC's own reconnect backoff would take about a second (measured
	// 1.02-1.05s without the fresh connection); a fresh connection is
	// seen by the next probe (about 50ms).
	if took > 500*time.Millisecond {
		t.Errorf("up again after %v: the probe waited out gRPC's reconnect backoff", took)
	}
}
