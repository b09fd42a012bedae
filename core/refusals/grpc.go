package refusals

import (
	"net"

	"google.golang.org/grpc/credentials"
)

// GRPCCredentials wraps a gRPC server's transport credentials so that
// every handshake they refuse is recorded in l (the controller's sidecar
// API uses it; HTTPErrorLog is the same for an HTTPS server).
func GRPCCredentials(c credentials.TransportCredentials, l *Log) credentials.TransportCredentials {
	return grpcCounter{TransportCredentials: c, log: l}
}

type grpcCounter struct {
	credentials.TransportCredentials
	log *Log
}

func (c grpcCounter) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		c.log.Refused(raw.RemoteAddr().String(), err)
	}
	return conn, info, err
}

func (c grpcCounter) Clone() credentials.TransportCredentials {
	return grpcCounter{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}
