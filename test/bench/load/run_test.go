package load

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Every protocol runs briefly against the backend, open and closed loop,
// and produces well-formed results. No speed is asserted here.
func TestRunEveryProtocolAgainstServe(t *testing.T) {
	o := ServeOptions{HTTP: freeAddr(t), GRPC: freeAddr(t), TCP: freeAddr(t)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, o, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("backend not ready")
	}
	targets := map[string]string{"http1": o.HTTP, "h2": o.HTTP, "grpc": o.GRPC, "tcp": o.TCP, "tcp-new": o.TCP}
	for proto, target := range targets {
		for _, rate := range []float64{200, 0} {
			r, err := Run(ctx, Config{Proto: proto, Target: target, Rate: rate, Conns: 2, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
			if err != nil {
				t.Fatalf("%s rate %v: %v", proto, rate, err)
			}
			if r.Errors != 0 || r.Requests == 0 {
				t.Errorf("%s rate %v: %d requests, %d errors (%s)", proto, rate, r.Requests, r.Errors, r.FirstError)
			}
			if r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
				t.Errorf("%s rate %v: malformed latency %+v", proto, rate, r.Latency)
			}
		}
	}
	closeIdle, err := HoldIdle(o.HTTP, 10)
	if err != nil {
		t.Fatal(err)
	}
	closeIdle()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// With several targets, the connections are spread over them in turn,
// and every target gets its share of the requests.
func TestRunSpreadsConnectionsOverTargets(t *testing.T) {
	var counts [3]atomic.Int64
	var targets []string
	for i := range counts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			counts[i].Add(1)
			w.Write([]byte("ok"))
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		targets = append(targets, ln.Addr().String())
	}
	r, err := Run(context.Background(), Config{Proto: "http1", Target: strings.Join(targets, ","), Rate: 300, Conns: 6,
		Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.Requests == 0 {
		t.Fatalf("%d requests, %d errors (%s)", r.Requests, r.Errors, r.FirstError)
	}
	for i := range counts {
		if n := counts[i].Load(); n == 0 {
			t.Errorf("target %d (%s) got no request; counts %d %d %d", i, targets[i], counts[0].Load(), counts[1].Load(), counts[2].Load())
		}
	}
	if _, err := Run(context.Background(), Config{Proto: "http1", Target: targets[0] + ",127.0.0.1:1", Conns: 2, Duration: time.Millisecond}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("a target that refuses: error %v, want one naming it", err)
	}
}
