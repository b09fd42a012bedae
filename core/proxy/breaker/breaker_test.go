package breaker

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestBreakerCaps: each cap refuses the request past it, the queue holds
// max_pending waiters (counted in the gauge), and a freed slot lets a
// waiter through.
func TestBreakerCaps(t *testing.T) {
	b := New(&meshapi.CircuitBreaker{MaxRequests: 1, MaxPending: 1, MaxRetries: 1, MaxConnections: 1}, nil)
	waiting := prometheus.NewGauge(prometheus.GaugeOpts{Name: "waiting"})

	release, ok := b.Acquire(context.Background(), waiting)
	if !ok {
		t.Fatal("the first request was refused")
	}
	got := make(chan bool)
	go func() {
		r, ok := b.Acquire(context.Background(), waiting)
		if ok {
			r()
		}
		got <- ok
	}()
	deadline := time.Now().Add(5 * time.Second)
	for gaugeValue(t, waiting) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second request never queued")
		}
		time.Sleep(time.Millisecond) // polling a gauge: bounded by deadline
	}
	if _, ok := b.Acquire(context.Background(), waiting); ok {
		t.Error("a third request got in past max_requests 1 and max_pending 1")
	}
	release()
	select {
	case ok := <-got:
		if !ok {
			t.Error("the queued request was refused after a slot was freed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued request did not get the freed slot")
	}
	if v := gaugeValue(t, waiting); v != 0 {
		t.Errorf("waiting gauge %v after the queue emptied, want 0", v)
	}

	done, ok := b.StartRetry()
	if !ok {
		t.Fatal("the first retry was refused")
	}
	if _, ok := b.StartRetry(); ok {
		t.Error("a second concurrent retry got in past max_retries 1")
	}
	done()
	done() // twice counts once
	if d, ok := b.StartRetry(); !ok {
		t.Error("a retry was refused after the first ended")
	} else {
		d()
	}

	cdone, ok := b.StartConn()
	if !ok {
		t.Fatal("the first connection was refused")
	}
	if _, ok := b.StartConn(); ok {
		t.Error("a second connection got in past max_connections 1")
	}
	cdone()
	if Conns(func() (*Breaker, prometheus.Gauge) { return b, waiting }).MaxConns() != 1 {
		t.Error("Conns does not read max_connections")
	}
}

// TestBreakerNewKeepsCounts: a configuration with the same caps keeps the
// breaker, and its counts; other caps get a fresh one.
func TestBreakerNewKeepsCounts(t *testing.T) {
	cfg := &meshapi.CircuitBreaker{MaxRetries: 1}
	b := New(cfg, nil)
	if _, ok := b.StartRetry(); !ok {
		t.Fatal("the first retry was refused")
	}
	same := New(&meshapi.CircuitBreaker{MaxRetries: 1}, b)
	if same != b {
		t.Fatal("the same caps made a new breaker")
	}
	if _, ok := same.StartRetry(); ok {
		t.Error("the kept breaker lost its retry count")
	}
	if New(&meshapi.CircuitBreaker{MaxRetries: 2}, b) == b {
		t.Error("new caps kept the old breaker")
	}
	if _, ok := New(nil, nil).Acquire(context.Background(), prometheus.NewGauge(prometheus.GaugeOpts{Name: "w"})); !ok {
		t.Error("no breaker config refused a request")
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatalf("reading the gauge: %v", err)
	}
	return m.GetGauge().GetValue()
}
