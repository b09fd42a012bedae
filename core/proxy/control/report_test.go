package control_test

import (
	"context"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/control"
)

// A controller that accepts the connection and then says nothing (no
// TLS handshake, no answer) does not hold a report past its context:
// SendStats returns an error within the bound, every time.
func TestSendStatsIsBoundedByItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	c, err := control.New(&tenant{instance: "api-0"}, control.Options{InstanceID: "api-0", Controllers: []string{ln.Addr().String()}, TrustBundle: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := c.SendStats(ctx, &meshapi.StatsReport{InstanceId: "api-0"})
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("report %d: sent to a controller that never answered", i)
		}
		if took > 5*time.Second {
			t.Errorf("report %d: SendStats took %v past its 200ms context", i, took)
		}
	}
}
