package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestIdleTimeoutChange: a new idle timeout for an upstream takes effect
// on the running listener: an app connection left idle is closed.
func TestIdleTimeoutChange(t *testing.T) {
	m := newMesh(t, httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	cfg := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, m.server.Addr("inbound"))
	cfg.Upstreams[0].LocalPort = uint32(m.client.Addr("upstream/api").(*net.TCPAddr).Port)
	cfg.Upstreams[0].Timeouts = &meshapi.Timeouts{Idle: durationpb.New(50 * time.Millisecond)}
	apply(t, m.client, 2, cfg)
	if got := m.client.Addr("upstream/api").String(); got != m.outbound {
		t.Fatalf("the upstream moved from %s to %s", m.outbound, got)
	}
	c, err := net.DialTimeout("tcp", m.outbound, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "GET /idle HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The sidecar closes the idle connection: the read ends with EOF, not
	// with the test's own deadline.
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("reading an idle connection: %v, want EOF from the idle timeout", err)
	}
}
