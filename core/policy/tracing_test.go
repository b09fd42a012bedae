package policy

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestDiffTracing(t *testing.T) {
	on := func(f func(*Tracing)) *Tracing {
		tr := &Tracing{Sampling: 1, Endpoint: "127.0.0.1:4317", Protocol: TracingGRPC, ServiceName: "{service}", MaxBatch: 512, MaxQueue: 2048, BatchTimeout: 5 * time.Second}
		if f != nil {
			f(tr)
		}
		return tr
	}
	tests := []struct {
		name     string
		old, new *Tracing
		want     []string
	}{
		{"off both", nil, nil, nil},
		{"unchanged", on(nil), on(nil), nil},
		{"turned on", nil, on(nil), []string{"tracing: off => on (sampling 1, grpc to 127.0.0.1:4317)"}},
		{"turned off", on(nil), nil, []string{"tracing: on => off"}},
		{"sampling", on(nil), on(func(t *Tracing) { t.Sampling = 0.01 }), []string{"tracing.sampling: 1 => 0.01"}},
		{"collector", on(nil), on(func(t *Tracing) { t.Endpoint, t.Protocol = "127.0.0.1:4318", TracingHTTP }),
			[]string{"tracing.endpoint: 127.0.0.1:4317 => 127.0.0.1:4318", "tracing.protocol: grpc => http"}},
		{"batching", on(nil), on(func(t *Tracing) { t.MaxBatch, t.MaxQueue, t.BatchTimeout = 8, 16, time.Second }),
			[]string{"tracing.max_batch: 512 => 8", "tracing.max_queue: 2048 => 16", "tracing.batch_timeout: 5s => 1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := &Policy{Mesh: Mesh{TrustDomain: "t", DefaultAction: Deny, Tracing: tt.old}}
			new := &Policy{Mesh: Mesh{TrustDomain: "t", DefaultAction: Deny, Tracing: tt.new}}
			pl := Diff(old, new)
			if !slices.Equal(pl.Mesh, tt.want) {
				t.Fatalf("plan mesh lines %q, want %q", pl.Mesh, tt.want)
			}
			if pl.Empty() != (len(tt.want) == 0) {
				t.Errorf("Empty() = %v with %d changes", pl.Empty(), len(tt.want))
			}
			var buf bytes.Buffer
			if err := pl.Write(&buf); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !bytes.Contains(buf.Bytes(), []byte("~ mesh "+w+"\n")) {
					t.Errorf("weft policy plan output lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}
