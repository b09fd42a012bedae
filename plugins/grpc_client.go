package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/weftmesh/weft/plugins/proto"
)

// GRPCClient is the host-side shim: an Adapter over proto.AdapterClient.
type GRPCClient struct {
	Client proto.AdapterClient
}

// Info calls the Info RPC.
func (c *GRPCClient) Info(ctx context.Context) (*InfoResponse, error) {
	r, err := c.Client.Info(ctx, &proto.InfoRequest{})
	if err != nil {
		return nil, rpcError(ctx, "asking adapter for its info", err)
	}
	return infoFromProto(r), nil
}

// Configure calls the Configure RPC. Problems with the configuration come
// back as diagnostics; an error means the call itself failed.
func (c *GRPCClient) Configure(ctx context.Context, req *ConfigureRequest) (*ConfigureResponse, error) {
	r, err := c.Client.Configure(ctx, configureRequestToProto(req))
	if err != nil {
		return nil, rpcError(ctx, "configuring adapter", err)
	}
	return configureResponseFromProto(r), nil
}

// Watch calls the Watch RPC and puts every event of the stream on events
// until ctx is cancelled (it returns ctx's error) or the stream ends. It
// never closes events. A stream the adapter ends without an error returns
// nil. It accepts deltas (delta.go): every event it puts on events holds
// the whole snapshot all the same.
func (c *GRPCClient) Watch(ctx context.Context, req *WatchRequest, events chan<- WatchEvent) error {
	stream, err := c.Client.Watch(ctx, &proto.WatchRequest{AcceptsDeltas: true})
	if err != nil {
		return rpcError(ctx, "watching adapter", err)
	}
	var dec deltaDecoder
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return rpcError(ctx, "watching adapter", err)
		}
		ev, err := dec.decode(p)
		if err != nil {
			return fmt.Errorf("watching adapter: %w", err)
		}
		select {
		case events <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// VerifyIdentity calls the VerifyIdentity RPC. Adapters without the
// CapVerifiesIdentity capability answer Unimplemented.
func (c *GRPCClient) VerifyIdentity(ctx context.Context, req *VerifyIdentityRequest) (*VerifyIdentityResponse, error) {
	r, err := c.Client.VerifyIdentity(ctx, &proto.VerifyIdentityRequest{InstanceId: req.InstanceID, Credential: req.Credential})
	if err != nil {
		return nil, rpcError(ctx, "verifying an identity with the adapter", err)
	}
	return &VerifyIdentityResponse{InstanceID: r.InstanceId, Service: r.Service, Namespace: r.Namespace, Node: r.Node}, nil
}

var (
	_ Adapter          = (*GRPCClient)(nil)
	_ IdentityVerifier = (*GRPCClient)(nil)
)
