package proxy_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/core/meshapi"
)

// BenchmarkGRPCChain sends gRPC unary calls (grpc.health.v1.Health/Check)
// through two sidecars (the client's outbound, mTLS over HTTP/2, the
// server's inbound) to a gRPC app: one call at a time, and 16 at once on
// one connection as make bench's grpc-unary scenario does. For profiling:
//
//	go test -run - -bench GRPCChain -benchmem -cpuprofile cpu.out ./core/proxy
func BenchmarkGRPCChain(b *testing.B) {
	app := grpcApp(b)
	m := newMesh(b, app, meshapi.Protocol_PROTOCOL_GRPC, allowWeb())
	b.Run("direct", func(b *testing.B) { benchGRPC(b, app.String()) })
	b.Run("mesh", func(b *testing.B) { benchGRPC(b, m.outbound) })
}

// benchGRPC calls Health/Check at addr (plain h2c).
func benchGRPC(b *testing.B, addr string) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	call := func() error {
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err
	}
	if err := call(); err != nil {
		b.Fatalf("first call: %v", err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("c16", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8) // 8 x GOMAXPROCS (2 here) = 16 callers
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
