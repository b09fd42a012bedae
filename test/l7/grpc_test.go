package l7

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/test/harness"
)

// grpcApp serves the gRPC health service, answering every call with a
// header x-instance; with fail set, every other call fails UNAVAILABLE.
func grpcApp(name string, fail bool, hits *atomic.Int64) func(net.Listener) {
	return func(ln net.Listener) {
		tag := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			n := hits.Add(1)
			grpc.SetHeader(ctx, metadata.Pairs("x-instance", name))
			if fail && n%2 == 1 {
				return nil, status.Error(codes.Unavailable, "flaky: failing this one")
			}
			return next(ctx, req)
		}
		srv := grpc.NewServer(grpc.UnaryInterceptor(tag))
		healthpb.RegisterHealthServer(srv, health.NewServer())
		srv.Serve(ln)
	}
}

const grpcPolicy = `
service "web" {
  protocol = "grpc"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 1
  }
}
service "api" {
  protocol = "grpc"
  binding "local" { name = "api" }
  subset "v1" {
    meta = { version = "v1" }
  }
  subset "v2" {
    meta = { version = "v2" }
  }
  route "check-canary" {
    match {
      grpc_service = "grpc.health.v1.Health"
      grpc_method  = "Check"
      header "x-canary" {
        present = true
      }
    }
    split "v2" {
      weight = 100
    }
  }
  route "rest" {
    split "v1" {
      weight = 100
    }
    retry {
      attempts = 2
      on       = ["unavailable"]
      budget {
        percent = 100
      }
    }
  }
}
intention "web" "api" {
  action = "allow"
}
`

func TestGRPCRoutingAndRetry(t *testing.T) {
	var v1Hits, v2Hits atomic.Int64
	m := start(t, grpcPolicy,
		inst{id: "web-1", svc: "web"},
		inst{id: "api-v1", svc: "api", meta: map[string]string{"version": "v1"}, serve: grpcApp("api-v1", true, &v1Hits)},
		inst{id: "api-v2", svc: "api", meta: map[string]string{"version": "v2"}, serve: grpcApp("api-v2", false, &v2Hits)},
	)
	addr := m.url("web-1", "api", "")[len("http://"):]
	hc := harness.HealthClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	check := func(canary bool) (string, error) {
		c := ctx
		if canary {
			c = metadata.AppendToOutgoingContext(ctx, "x-canary", "1")
		}
		var hdr metadata.MD
		_, err := hc.Check(c, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
		return first(hdr.Get("x-instance")), err
	}
	for range 10 {
		got, err := check(true)
		if err != nil || got != "api-v2" {
			t.Fatalf("canary Check: %q, %v; want api-v2", got, err)
		}
	}
	// v1 fails every other call with UNAVAILABLE; the route retries it.
	const n = 20
	for i := range n {
		got, err := check(false)
		if err != nil || got != "api-v1" {
			t.Fatalf("call %d: %q, %v; want api-v1 after a retry", i, got, err)
		}
	}
	if v1Hits.Load() != 2*n {
		t.Errorf("api-v1 saw %d calls, want %d: each first try fails, each retry succeeds", v1Hits.Load(), 2*n)
	}
	if v2Hits.Load() != 10 {
		t.Errorf("api-v2 saw %d calls, want 10", v2Hits.Load())
	}

	// A server stream passes through the route that retries, untouched.
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	msg, err := stream.Recv()
	if err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v; want SERVING", msg, err)
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// TestGRPCFault: an aborted gRPC call gets the gRPC status that matches
// the abort status, in a valid trailers-only answer.
func TestGRPCFault(t *testing.T) {
	src := strings.Replace(grpcPolicy, `route "rest" {`, `route "chaos" {
    match {
      header "x-chaos" {
        present = true
      }
    }
    fault {
      abort_status  = 503
      abort_percent = 100
    }
  }
  route "rest" {`, 1)
	var hits atomic.Int64
	m := start(t, src, inst{id: "web-1", svc: "web"},
		inst{id: "api-v1", svc: "api", meta: map[string]string{"version": "v1"}, serve: grpcApp("api-v1", false, &hits)})
	hc := harness.HealthClient(t, strings.TrimPrefix(m.url("web-1", "api", ""), "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := hc.Check(metadata.AppendToOutgoingContext(ctx, "x-chaos", "1"), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "fault injected") {
		t.Errorf("aborted call: %v, want UNAVAILABLE naming the fault", err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("a call the fault does not match: %v", err)
	}
	if hits.Load() != 1 {
		t.Errorf("the app saw %d calls, want 1 (the aborted one never left the caller's sidecar)", hits.Load())
	}
}
