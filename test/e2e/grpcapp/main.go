// Command grpcapp is the gRPC application of the end-to-end tests: the
// standard gRPC health service on $HOST:$PORT, answering every call with a
// response header x-seen-caller that holds the caller identity its sidecar
// passed in x-weft-caller.
package main

import (
	"context"
	"log"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func echoCaller(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	caller := ""
	if v := md.Get("x-weft-caller"); len(v) > 0 {
		caller = v[0]
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-seen-caller", caller))
	return next(ctx, req)
}

func main() {
	addr := net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT"))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("grpcapp: listening on %s: %v", addr, err)
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(echoCaller))
	healthpb.RegisterHealthServer(s, health.NewServer())
	log.Printf("grpcapp: serving gRPC health on %s", addr)
	log.Fatal(s.Serve(lis))
}
