package tracing

import (
	"context"
	"crypto/rand"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/spiffe"
)

func cfg(endpoint string, sampling float64) *meshapi.Tracing {
	return &meshapi.Tracing{Endpoint: endpoint, Protocol: meshapi.TracingProtocol_TRACING_PROTOCOL_HTTP, Sampling: sampling,
		ServiceName: "api", MaxBatch: 8, MaxQueue: 16, BatchTimeout: durationpb.New(time.Minute)}
}

func TestValidate(t *testing.T) {
	mod := func(f func(c *meshapi.Tracing)) *meshapi.Tracing {
		c := cfg("127.0.0.1:4318", 0.5)
		f(c)
		return c
	}
	for _, tc := range []struct {
		name string
		c    *meshapi.Tracing
		want string // "" valid
	}{
		{"off", nil, ""},
		{"good", cfg("127.0.0.1:4318", 0.5), ""},
		{"ipv6", cfg("[::1]:4317", 1), ""},
		{"no port", cfg("127.0.0.1", 1), "not host:port"},
		{"no host", cfg(":4317", 1), "not host:port"},
		{"port 0", cfg("127.0.0.1:0", 1), "port"},
		{"port too big", cfg("127.0.0.1:70000", 1), "port"},
		{"negative sampling", cfg("127.0.0.1:4317", -0.1), "fraction"},
		{"sampling above 1", cfg("127.0.0.1:4317", 1.01), "fraction"},
		{"NaN sampling", cfg("127.0.0.1:4317", math.NaN()), "fraction"},
		{"unknown protocol", mod(func(c *meshapi.Tracing) { c.Protocol = 7 }), "protocol"},
		{"no batch", mod(func(c *meshapi.Tracing) { c.MaxBatch = 0 }), "max_batch"},
		{"queue below batch", mod(func(c *meshapi.Tracing) { c.MaxQueue = 4 }), "max_queue"},
		{"queue too big", mod(func(c *meshapi.Tracing) { c.MaxBatch, c.MaxQueue = 8, 1<<20 }), "max_queue"},
		{"no batch timeout", mod(func(c *meshapi.Tracing) { c.BatchTimeout = nil }), "batch_timeout"},
		{"batch timeout too long", mod(func(c *meshapi.Tracing) { c.BatchTimeout = durationpb.New(2 * time.Minute) }), "batch_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.c)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestRatioSampler(t *testing.T) {
	ids := make([]trace.TraceID, 4000)
	for i := range ids {
		rand.Read(ids[i][:])
	}
	for _, tc := range []struct {
		f      float64
		lo, hi int
	}{{0, 0, 0}, {1, 4000, 4000}, {0.25, 850, 1150}, {0.01, 10, 80}} {
		s := &ratioSampler{}
		s.set(tc.f)
		n := 0
		for _, id := range ids {
			if s.sample(id) {
				n++
			}
		}
		if n < tc.lo || n > tc.hi {
			t.Errorf("sampling %g: %d of %d sampled, want %d to %d", tc.f, n, len(ids), tc.lo, tc.hi)
		}
	}
}

// TestApplyInPlace: a new sampling rate keeps the exporter; a new
// collector replaces it; nil turns tracing off.
func TestApplyInPlace(t *testing.T) {
	tr := New(Options{})
	t.Cleanup(func() { tr.Close(context.Background()) })
	self := Self{ID: "spiffe://t/ns/default/svc/api", Service: "api", Namespace: "default"}
	if tr.Enabled() {
		t.Fatal("a new tracer is on")
	}
	if err := tr.Apply(cfg("127.0.0.1:4318", 1), self); err != nil {
		t.Fatal(err)
	}
	exp := tr.exp
	if err := tr.Apply(cfg("127.0.0.1:4318", 0), self); err != nil {
		t.Fatal(err)
	}
	if tr.exp != exp {
		t.Error("a sampling change replaced the exporter")
	}
	if exp.sampler.bound.Load() != 0 {
		t.Error("the sampling change did not reach the sampler")
	}
	if err := tr.Apply(cfg("127.0.0.1:4319", 0), self); err != nil {
		t.Fatal(err)
	}
	if tr.exp == exp {
		t.Error("a new collector kept the old exporter")
	}
	if err := tr.Apply(nil, self); err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.Inbound(httptest.NewRequest("GET", "/", nil), spiffe.Identity{}) != nil {
		t.Error("tracing still on after Apply(nil)")
	}
	if err := tr.Apply(cfg("127.0.0.1", 1), self); err == nil {
		t.Errorf("Apply of a bad config = %v", err)
	}
}

// TestExportFailureCounted: spans a collector does not take are counted
// as failed, not retried.
func TestExportFailureCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	tr := New(Options{Registerer: reg})
	t.Cleanup(func() { tr.Close(context.Background()) })
	if err := tr.Apply(cfg(closed, 1), Self{ID: "spiffe://t/ns/default/svc/api", Service: "api"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		tr.Inbound(r, spiffe.Identity{TrustDomain: "t", Namespace: "default", Service: "web"}).End(Outcome{Status: 200})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["failed"] != 3 || got["exported"] != 0 {
		t.Errorf("spans by outcome %v, want 3 failed", got)
	}
}
