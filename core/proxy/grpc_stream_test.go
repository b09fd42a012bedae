package proxy_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weftmesh/weft/core/meshapi"
)

// duplexApp echoes each FullDuplexCall message as it comes.
type duplexApp struct {
	testpb.UnimplementedTestServiceServer
}

func (duplexApp) FullDuplexCall(s testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// UnaryCall answers with the payload it got.
func (duplexApp) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

// TestGRPCStreamsThroughCoalescing: the sidecars hold a call's frames
// until its end to send them in one write (core/proxy/h2cork), for at most
// a millisecond; a stream that stays open must still move message by
// message, both ways, and unary calls beside it must not wait on it.
func TestGRPCStreamsThroughCoalescing(t *testing.T) {
	ln := listen(t)
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	testpb.RegisterTestServiceServer(srv, duplexApp{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	m := newMesh(t, ln.Addr(), meshapi.Protocol_PROTOCOL_GRPC, allowWeb())
	cc := dialGRPC(t, m.outbound)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	t.Run("ping-pong", func(t *testing.T) {
		// Each message waits for the answer to the one before: a proxy
		// that held a stream's frames until its end would never answer.
		s, err := testpb.NewTestServiceClient(cc).FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			start := time.Now()
			body := []byte(fmt.Sprintf("ping %d", i))
			if err := s.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
				t.Fatalf("sending message %d: %v", i, err)
			}
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("receiving the answer to message %d (bounded by %v): %v", i, wait, err)
			}
			if got := string(resp.GetPayload().GetBody()); got != string(body) {
				t.Errorf("answer %d is %q, want %q", i, got, body)
			}
			t.Logf("round %d took %v", i, time.Since(start))
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Errorf("after CloseSend: %v, want io.EOF", err)
		}
	})

	t.Run("large unary", func(t *testing.T) {
		// Bodies many frames long, past the flow-control windows: holds
		// must not stall them.
		for _, n := range []int{1, 20 << 10, 1 << 20} {
			body := make([]byte, n)
			for i := range body {
				body[i] = byte(i)
			}
			start := time.Now()
			resp, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
			if err != nil {
				t.Fatalf("UnaryCall of %d bytes: %v", n, err)
			}
			if got := resp.GetPayload().GetBody(); string(got) != string(body) {
				t.Errorf("UnaryCall of %d bytes: %d bytes came back, not the same", n, len(got))
			}
			t.Logf("%d bytes both ways took %v", n, time.Since(start))
		}
	})

	t.Run("server stream updates", func(t *testing.T) {
		hc := healthpb.NewHealthClient(cc)
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := []healthpb.HealthCheckResponse_ServingStatus{
			healthpb.HealthCheckResponse_SERVING,
			healthpb.HealthCheckResponse_NOT_SERVING,
			healthpb.HealthCheckResponse_SERVING,
		}
		for i, st := range want {
			if i > 0 {
				hs.SetServingStatus("", st)
			}
			start := time.Now()
			msg, err := w.Recv()
			if err != nil {
				t.Fatalf("receiving watch update %d (bounded by %v): %v", i, wait, err)
			}
			if msg.Status != st {
				t.Errorf("update %d: %v, want %v", i, msg.Status, st)
			}
			t.Logf("update %d took %v", i, time.Since(start))
			// A unary call on the same connection while the stream is open.
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("Check beside the open stream: %v", err)
			}
			if resp.Status != st {
				t.Errorf("Check beside the stream: %v, want %v", resp.Status, st)
			}
		}
	})
}

// TestGRPCDrainLetsCallsFinish: the inbound serves gRPC connections on
// x/net/http2's server (for h2cork); when the callee sidecar closes, a
// call in flight must still finish on its connection (GOAWAY, not a
// reset), and the connection must close once it is done rather than at
// the drain timeout.
func TestGRPCDrainLetsCallsFinish(t *testing.T) {
	ln := listen(t)
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, duplexApp{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	m := newMesh(t, ln.Addr(), meshapi.Protocol_PROTOCOL_GRPC, allowWeb())
	cc := dialGRPC(t, m.outbound)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := testpb.NewTestServiceClient(cc).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	echo := func(what string) {
		t.Helper()
		if err := s.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(what)}}); err != nil {
			t.Fatalf("sending %s: %v", what, err)
		}
		resp, err := s.Recv()
		if err != nil {
			t.Fatalf("receiving the echo of %s: %v", what, err)
		}
		if got := string(resp.GetPayload().GetBody()); got != what {
			t.Fatalf("echo %q, want %q", got, what)
		}
	}
	echo("before")

	start := time.Now()
	closed := make(chan struct{})
	go func() { m.server.Close(); close(closed) }()
	echo("while draining")
	select {
	case <-closed:
		t.Fatal("the callee sidecar closed with a call still in flight")
	default:
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("the call ended with %v, want io.EOF (a clean end)", err)
	}
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatalf("the callee sidecar did not close within %v of the call's end", wait)
	}
	// harness_test.go's proxies drain for 2s at most: a connection left
	// open until then was not told to go away.
	if d := time.Since(start); d >= 2*time.Second {
		t.Errorf("closing took %v: the drain timeout closed the connection, GOAWAY did not", d)
	} else {
		t.Logf("the callee sidecar closed %v after the drain began", d)
	}
}
