package refusals_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/refusals"
)

// TestGRPCCredentials: a gRPC server whose credentials are wrapped counts
// the handshakes it refuses, by reason, and a clone counts into the same
// Log.
func TestGRPCCredentials(t *testing.T) {
	l := refusals.New(refusals.Options{Every: time.Hour})
	defer l.Close()
	// httptest's certificate, as any TLS serving certificate
	cert := httptest.NewTLSServer(nil)
	serving := cert.TLS.Certificates[0]
	cert.Close()
	creds := refusals.GRPCCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serving}}), l)
	if creds.Clone() == nil {
		t.Fatal("Clone returned nil")
	}
	srv := grpc.NewServer(grpc.Creds(creds.Clone()))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") // plaintext HTTP/2 where TLS is expected
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Counts().ByReason[refusals.NotTLS] < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v after 10s, want 3 not_tls refusals", l.Counts())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
