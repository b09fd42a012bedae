package plugins

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/plugins/proto"
)

// GRPCServer is the plugin-side shim: it serves proto.AdapterServer over
// an Adapter.
type GRPCServer struct {
	proto.UnimplementedAdapterServer
	Impl Adapter
}

// Info answers the Info RPC.
func (s *GRPCServer) Info(ctx context.Context, _ *proto.InfoRequest) (*proto.InfoResponse, error) {
	r, err := s.Impl.Info(ctx)
	if err != nil {
		return nil, err
	}
	return infoToProto(r), nil
}

// Configure answers the Configure RPC. An error from the adapter goes back
// in-band, as an error diagnostic.
func (s *GRPCServer) Configure(ctx context.Context, req *proto.ConfigureRequest) (*proto.ConfigureResponse, error) {
	r, err := s.Impl.Configure(ctx, configureRequestFromProto(req))
	if err != nil {
		return &proto.ConfigureResponse{Diagnostics: diagnosticsToProto([]Diagnostic{{
			Severity: SeverityError,
			Summary:  "Adapter configuration failed",
			Detail:   err.Error(),
		}})}, nil
	}
	return configureResponseToProto(r), nil
}

// VerifyIdentity answers the VerifyIdentity RPC if the adapter implements
// IdentityVerifier, and Unimplemented otherwise. A refusal travels as
// PermissionDenied with the adapter's message.
func (s *GRPCServer) VerifyIdentity(ctx context.Context, req *proto.VerifyIdentityRequest) (*proto.VerifyIdentityResponse, error) {
	v, ok := s.Impl.(IdentityVerifier)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this adapter does not verify scheduler credentials (it lacks the verifies-identity capability)")
	}
	r, err := v.VerifyIdentity(ctx, &VerifyIdentityRequest{InstanceID: req.InstanceId, Credential: req.Credential})
	if err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	return &proto.VerifyIdentityResponse{InstanceId: r.InstanceID, Service: r.Service, Namespace: r.Namespace, Node: r.Node}, nil
}

// Watch answers the Watch RPC: it runs the adapter's Watch and sends every
// event it puts on the channel down the stream, as a delta of the one
// before when the host accepts deltas (delta.go). When the stream breaks, the
// adapter's ctx is cancelled and events are drained until its Watch returns,
// so an adapter blocked on a send is never stuck.
func (s *GRPCServer) Watch(req *proto.WatchRequest, stream grpc.ServerStreamingServer[proto.WatchEvent]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	events := make(chan WatchEvent)
	done := make(chan error, 1)
	var enc *deltaEncoder
	if req.GetAcceptsDeltas() {
		enc = &deltaEncoder{}
	}
	encode := func(ev WatchEvent) *proto.WatchEvent {
		if enc == nil {
			return watchEventToProto(ev)
		}
		return enc.encode(ev)
	}
	go func() { done <- s.Impl.Watch(ctx, &WatchRequest{}, events) }()
	var sendErr error
	for {
		select {
		case err := <-done:
			if sendErr != nil {
				return sendErr
			}
			return err
		case ev, ok := <-events:
			if !ok {
				events = nil // the adapter closed its channel; wait for Watch to return
				continue
			}
			if sendErr != nil {
				continue
			}
			if err := stream.Send(encode(ev)); err != nil {
				sendErr = err
				cancel()
			}
		}
	}
}

var _ proto.AdapterServer = (*GRPCServer)(nil)
