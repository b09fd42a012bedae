package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
)

// twoServers is a web sidecar and two api sidecars, a and b, whose apps
// answer with their own name.
type twoServers struct {
	m    *mesh
	a, b net.Addr // inbound addresses
}

func newTwoServers(t *testing.T, proto meshapi.Protocol, appA, appB net.Addr) *twoServers {
	t.Helper()
	m := newMesh(t, appA, proto, allowWeb())
	other, _ := newProxy(t, m.ca, "api")
	apply(t, other, 1, serverConfig(appB, proto, allowWeb()))
	return &twoServers{m: m, a: m.server.Addr(proxy.KeyInbound), b: other.Addr(proxy.KeyInbound)}
}

func TestApplySwapsEndpointsKeepingConnections(t *testing.T) {
	s := newTwoServers(t, meshapi.Protocol_PROTOCOL_TCP, echoApp(t, "A:"), echoApp(t, "B:"))
	m := s.m
	_, old := dialLine(t, m.outbound)
	if got, err := old("1"); err != nil || got != "A:1" {
		t.Fatalf("before the change: %q, %v; want A:1", got, err)
	}

	apply(t, m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, s.b))
	if got := m.client.Addr(proxy.KeyUpstream("api")).String(); got != m.outbound {
		t.Fatalf("the upstream listener moved from %s to %s", m.outbound, got)
	}
	if got, err := old("2"); err != nil || got != "A:2" {
		t.Errorf("established connection after the change: %q, %v; want A:2", got, err)
	}
	_, fresh := dialLine(t, m.outbound)
	if got, err := fresh("3"); err != nil || got != "B:3" {
		t.Errorf("new connection after the change: %q, %v; want B:3", got, err)
	}
}

// namedApp answers every request with its name.
func namedApp(t *testing.T, name string) net.Addr {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr()
}

func TestApplySwapsEndpointsUnderOpenHTTP2Connection(t *testing.T) {
	s := newTwoServers(t, meshapi.Protocol_PROTOCOL_HTTP2, namedApp(t, "A"), namedApp(t, "B"))
	c := httpClient(true)
	defer c.CloseIdleConnections()
	call := func() (string, bool) {
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.m.outbound+"/", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), reused
	}
	if got, _ := call(); got != "A" {
		t.Fatalf("before the change: %q, want A", got)
	}
	apply(t, s.m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_HTTP2, apiID, s.b))
	got, reused := call()
	if got != "B" {
		t.Errorf("after the change: %q, want B", got)
	}
	if !reused {
		t.Error("the app's connection to its sidecar was not kept across the change")
	}
}

func TestBindConflictRejectsVersion(t *testing.T) {
	m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	busy := listen(t)
	_, busyPort := splitAddr(busy.Addr())

	cases := []struct {
		name string
		edit func(c *meshapi.ProxyConfig)
	}{
		{"new upstream", func(c *meshapi.ProxyConfig) {
			db := &meshapi.Upstream{Name: "db", Service: "db", SpiffeId: "spiffe://" + td + "/ns/default/svc/db", BindAddress: "127.0.0.1", LocalPort: busyPort}
			c.Upstreams = append(c.Upstreams, db)
		}},
		{"moved upstream", func(c *meshapi.ProxyConfig) { c.Upstreams[0].LocalPort = busyPort }},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, m.server.Addr(proxy.KeyInbound))
			tc.edit(cfg)
			err := m.client.Apply(uint64(10+i), cfg)
			if err == nil {
				t.Fatal("Apply succeeded on a port in use")
			}
			if !strings.Contains(err.Error(), busy.Addr().String()) || !strings.Contains(err.Error(), "in use") {
				t.Errorf("error %q does not name %s and say it is in use", err, busy.Addr())
			}
			if v, _ := m.client.Config(); v != 1 {
				t.Errorf("applied version is %d, want 1 kept", v)
			}
			if got := m.client.Addr(proxy.KeyUpstream("api")).String(); got != m.outbound {
				t.Errorf("upstream listener moved to %s", got)
			}
			if m.client.Addr(proxy.KeyUpstream("db")) != nil {
				t.Error("a listener of the rejected version is bound")
			}
			_, send := dialLine(t, m.outbound)
			if got, err := send("still"); err != nil || got != "still" {
				t.Errorf("the running listener after the rejection: %q, %v", got, err)
			}
		})
	}
}

func TestRemovedListenerLetsConnectionsFinish(t *testing.T) {
	m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	_, send := dialLine(t, m.outbound)
	if _, err := send("a"); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID)
	cfg.Upstreams = nil
	apply(t, m.client, 2, cfg)
	if a := m.client.Addr(proxy.KeyUpstream("api")); a != nil {
		t.Fatalf("removed listener still at %s", a)
	}
	if c, err := net.DialTimeout("tcp", m.outbound, wait); err == nil {
		c.Close()
		t.Error("the removed listener still accepts")
	}
	if got, err := send("b"); err != nil || got != "b" {
		t.Errorf("established connection after removal: %q, %v", got, err)
	}
}

// A protocol change replaces the handler but keeps the socket; connections
// of the old protocol carry on.
func TestProtocolChangeKeepsSocket(t *testing.T) {
	m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	_, send := dialLine(t, m.outbound)
	if _, err := send("a"); err != nil {
		t.Fatal(err)
	}
	inbound := m.server.Addr(proxy.KeyInbound)
	_, inPort := splitAddr(inbound)
	_, outPort := splitAddr(m.client.Addr(proxy.KeyUpstream("api")))

	srv := serverConfig(httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	srv.Inbound.Port = inPort
	apply(t, m.server, 2, srv)
	cli := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, inbound)
	cli.Upstreams[0].LocalPort = outPort
	apply(t, m.client, 2, cli)

	resp, body := get(t, httpClient(false), "http://"+m.outbound+"/p", nil)
	if resp.StatusCode != 200 || body != "hello /p" {
		t.Errorf("HTTP after the change: %d %q", resp.StatusCode, body)
	}
	if got, err := send("b"); err != nil || got != "b" {
		t.Errorf("TCP connection of the old protocol: %q, %v", got, err)
	}
}

// An upstream that takes over the port another one gives up gets its
// socket rather than a bind error.
func TestPortMovesBetweenUpstreams(t *testing.T) {
	m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	_, port := splitAddr(m.client.Addr(proxy.KeyUpstream("api")))
	cfg := clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, m.server.Addr(proxy.KeyInbound))
	cfg.Upstreams[0].Name = "api-renamed"
	cfg.Upstreams[0].LocalPort = port
	apply(t, m.client, 2, cfg)
	if a := m.client.Addr(proxy.KeyUpstream("api-renamed")); a == nil || a.String() != m.outbound {
		t.Fatalf("renamed upstream at %v, want %s", a, m.outbound)
	}
	_, send := dialLine(t, m.outbound)
	if got, err := send("x"); err != nil || got != "x" {
		t.Errorf("through the renamed upstream: %q, %v", got, err)
	}
}

func TestApplyRejectsInvalidConfig(t *testing.T) {
	ok := func() *meshapi.ProxyConfig {
		c := clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
		c.Inbound = &meshapi.Inbound{BindAddress: "127.0.0.1", AppPort: 8080}
		return c
	}
	cases := []struct {
		name string
		edit func(c *meshapi.ProxyConfig)
		want string
	}{
		{"nil", nil, "empty"},
		{"no service", func(c *meshapi.ProxyConfig) { c.Service = "" }, "names no service"},
		{"app port 0", func(c *meshapi.ProxyConfig) { c.Inbound.AppPort = 0 }, "inbound.app_port"},
		{"rule without source", func(c *meshapi.ProxyConfig) {
			c.Inbound.Authz = &meshapi.Authz{Rules: []*meshapi.AuthzRule{{}}}
		}, "no source"},
		{"upstream without name", func(c *meshapi.ProxyConfig) { c.Upstreams[0].Name = "" }, "no name"},
		{"duplicate upstream", func(c *meshapi.ProxyConfig) { c.Upstreams = append(c.Upstreams, c.Upstreams[0]) }, "twice"},
		{"bad spiffe id", func(c *meshapi.ProxyConfig) { c.Upstreams[0].SpiffeId = "api" }, "SPIFFE ID"},
		{"port too big", func(c *meshapi.ProxyConfig) { c.Upstreams[0].LocalPort = 70000 }, "local_port"},
		{"endpoint port 0", func(c *meshapi.ProxyConfig) { c.Upstreams[0].Endpoints[0].Port = 0 }, "endpoint 0 port"},
		{"unknown protocol", func(c *meshapi.ProxyConfig) { c.Upstreams[0].Protocol = 9 }, "unknown protocol"},
		{"same port twice", func(c *meshapi.ProxyConfig) {
			c.Inbound.Port, c.Upstreams[0].LocalPort = 15000, 15000
		}, "both want 127.0.0.1:15000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := proxy.New(proxy.Options{Log: io.Discard})
			defer p.Close()
			var cfg *meshapi.ProxyConfig
			if tc.edit != nil {
				cfg = ok()
				tc.edit(cfg)
			}
			err := p.Apply(1, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply: %v, want an error containing %q", err, tc.want)
			}
			if v, c := p.Config(); v != 0 || c != nil {
				t.Errorf("config version %d applied after a rejection", v)
			}
		})
	}
}

func TestCloseEndsConnectionsAndIsIdempotent(t *testing.T) {
	m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	c, send := dialLine(t, m.outbound)
	if _, err := send("a"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		m.client.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	c.SetReadDeadline(time.Now().Add(wait))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("a connection is still open after Close")
	}
	if err := m.client.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := m.client.Apply(2, clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID)); err == nil {
		t.Error("Apply after Close succeeded")
	}
	rec := httptest.NewRecorder()
	m.client.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `weft_connections_active{direction="outbound",peer="api"} 0`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %q after Close:\n%s", want, rec.Body)
	}
}

// deadAddr is a loopback address nothing listens on for the whole test:
// its port is the local port of a connection the test holds open, so a
// connection to it is refused and no listener the test starts later is
// given it. (A port freed at once, as freedAddr's, can be: a sidecar's
// listener, or the app meant to be the live one, then answers on the
// "dead" address.)
func deadAddr(t *testing.T) net.Addr {
	t.Helper()
	c, err := net.Dial("tcp", listen(t).Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr()
}

// freedAddr is a loopback address nothing listens on now, its port free
// for the test to listen on later; any listener the test starts may be
// given it too.
func freedAddr(t *testing.T) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr()
	ln.Close()
	return a
}

func TestDialFailureTriesAnotherEndpoint(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
		apply(t, m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, deadAddr(t), m.server.Addr(proxy.KeyInbound)))
		for i := range 2 { // round robin starts on the dead one at least once
			_, send := dialLine(t, m.outbound)
			if got, err := send("x"); err != nil || got != "x" {
				t.Errorf("connection %d: %q, %v", i, got, err)
			}
		}
	})
	t.Run("http", func(t *testing.T) {
		m := newMesh(t, httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
		apply(t, m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, deadAddr(t), m.server.Addr(proxy.KeyInbound)))
		for i := range 2 {
			if resp, body := get(t, httpClient(false), "http://"+m.outbound+"/", nil); resp.StatusCode != 200 {
				t.Errorf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
	})
}
