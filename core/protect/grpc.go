package protect

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// GRPCServerOptions are the settings as a gRPC server takes them: the
// header timeout bounds the whole connection setup (TLS and the HTTP/2
// preface), the streams and header bytes per connection, and a connection
// with no stream for the idle timeout is closed. Serve the server on
// Listener(ln) for the per-source cap.
func (sh *Shield) GRPCServerOptions() []grpc.ServerOption {
	s := sh.Settings()
	return []grpc.ServerOption{
		grpc.ConnectionTimeout(s.ReadHeaderTimeout),
		grpc.MaxConcurrentStreams(uint32(s.MaxConcurrentStreams)),
		grpc.MaxHeaderListSize(uint32(s.MaxHeaderBytes)),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: s.IdleTimeout}),
		// Pings more often than this from a client end its connection: a
		// ping flood costs the server a write each.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}
