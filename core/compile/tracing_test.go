package compile

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// TestCompileTracing: the mesh's tracing block reaches every instance's
// configuration, its service name filled in with the instance's own, and
// the incremental compiler agrees with Compile when it changes.
func TestCompileTracing(t *testing.T) {
	base := policy.Tracing{Sampling: 0.25, Endpoint: "127.0.0.1:4317", Protocol: policy.TracingGRPC, ServiceName: "{namespace}/{service}",
		MaxBatch: 64, MaxQueue: 128, BatchTimeout: 200 * time.Millisecond}
	httpT := base
	httpT.Protocol, httpT.Endpoint = policy.TracingHTTP, "127.0.0.1:4318"
	for _, tc := range []struct {
		name string
		tr   *policy.Tracing
		want func(svc string) *meshapi.Tracing
	}{
		{"off", nil, func(string) *meshapi.Tracing { return nil }},
		{"grpc", &base, func(svc string) *meshapi.Tracing {
			return &meshapi.Tracing{Endpoint: "127.0.0.1:4317", Sampling: 0.25, ServiceName: "default/" + svc, MaxBatch: 64, MaxQueue: 128, BatchTimeout: durationpb.New(200 * time.Millisecond)}
		}},
		{"http", &httpT, func(svc string) *meshapi.Tracing {
			return &meshapi.Tracing{Endpoint: "127.0.0.1:4318", Protocol: meshapi.TracingProtocol_TRACING_PROTOCOL_HTTP, Sampling: 0.25, ServiceName: "default/" + svc,
				MaxBatch: 64, MaxQueue: 128, BatchTimeout: durationpb.New(200 * time.Millisecond)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := demoPolicy()
			p.Mesh.Tracing = tc.tr
			entries := []registry.Entry{
				entry("api-0", "api", "127.0.0.3", model.HealthPassing),
				entry("frontend-0", "frontend", "127.0.0.2", model.HealthPassing),
			}
			got := Compile(p, entries)
			for id, svc := range map[string]string{"api-0": "api", "frontend-0": "frontend"} {
				if tr := got[id].GetTracing(); !proto.Equal(tr, tc.want(svc)) {
					t.Errorf("%s tracing %v, want %v", id, tr, tc.want(svc))
				}
			}
		})
	}
}
