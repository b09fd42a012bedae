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

// TestCompileHealthCheck: a service's health check goes into the
// configuration of each of its own instances, not into its callers'.
func TestCompileHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   *policy.HealthCheck
		want *meshapi.HealthCheck
	}{
		{"none", nil, nil},
		{"http", &policy.HealthCheck{Kind: policy.HealthHTTP, HTTPPath: "/healthz", ExpectStatus: 204, Interval: 2 * time.Second, Timeout: time.Second, UnhealthyThreshold: 2, HealthyThreshold: 1},
			&meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/healthz", ExpectStatus: 204, Interval: durationpb.New(2 * time.Second), Timeout: durationpb.New(time.Second), UnhealthyThreshold: 2, HealthyThreshold: 1}},
		{"grpc", &policy.HealthCheck{Kind: policy.HealthGRPC, GRPCService: "shop.Cart", Interval: time.Second, Timeout: time.Second, UnhealthyThreshold: 3, HealthyThreshold: 2},
			&meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_GRPC, GrpcService: "shop.Cart", Interval: durationpb.New(time.Second), Timeout: durationpb.New(time.Second), UnhealthyThreshold: 3, HealthyThreshold: 2}},
		{"tcp", &policy.HealthCheck{Kind: policy.HealthTCP, Interval: time.Second, Timeout: time.Second, UnhealthyThreshold: 1, HealthyThreshold: 1},
			&meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_TCP, Interval: durationpb.New(time.Second), Timeout: durationpb.New(time.Second), UnhealthyThreshold: 1, HealthyThreshold: 1}},
		{"unknown kind", &policy.HealthCheck{Kind: "udp"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := demoPolicy()
			api := p.Services["api"]
			api.HealthCheck = tc.hc
			p.Services["api"] = api
			got := Compile(p, []registry.Entry{
				entry("api-0", "api", "127.0.0.3", model.HealthPassing),
				entry("frontend-0", "frontend", "127.0.0.2", model.HealthPassing),
			})
			if hc := got["api-0"].GetHealthCheck(); !proto.Equal(hc, tc.want) {
				t.Errorf("api-0 health check %v, want %v", hc, tc.want)
			}
			if hc := got["frontend-0"].GetHealthCheck(); hc != nil {
				t.Errorf("the caller got the callee's health check: %v", hc)
			}
		})
	}
}
