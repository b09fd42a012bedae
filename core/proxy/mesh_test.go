package proxy_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

func TestHTTPThroughMesh(t *testing.T) {
	m := newMesh(t, httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	c := httpClient(false)
	defer c.CloseIdleConnections()
	resp, body := get(t, c, "http://"+m.outbound+"/hello", http.Header{"X-Weft-Caller": {"spiffe://evil/ns/x/svc/y"}})
	if resp.StatusCode != 200 || body != "hello /hello" {
		t.Fatalf("got %d %q, want 200 \"hello /hello\"", resp.StatusCode, body)
	}
	checks := map[string]string{
		"X-Seen-Caller": webID,
		"X-Seen-Xfcc":   "By=" + apiID + ";URI=" + webID,
		"X-Seen-Proto":  "HTTP/1.1",
	}
	for h, want := range checks {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("app saw %s = %q, want %q", h, got, want)
		}
	}

	t.Run("admin", func(t *testing.T) {
		adm := m.server.AdminHandler()
		for _, tc := range []struct{ path, want string }{
			{"/ready", "ready"},
			{"/metrics", `weft_requests_total{code="200",direction="inbound",peer="web",route="",subset=""} 1`},
			{"/metrics", `weft_connections_total{direction="inbound",peer="web"} 1`},
			{"/metrics", `weft_config_version 1`},
		} {
			rec := httptest.NewRecorder()
			adm.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("GET %s: %d, body lacks %q:\n%s", tc.path, rec.Code, tc.want, rec.Body)
			}
		}
		rec := httptest.NewRecorder()
		adm.ServeHTTP(rec, httptest.NewRequest("GET", "/config", nil))
		var u meshapi.ConfigUpdate
		if err := protojson.Unmarshal(rec.Body.Bytes(), &u); err != nil {
			t.Errorf("GET /config: %v", err)
		} else if u.Version != 1 || u.Config.GetService() != "api" {
			t.Errorf("GET /config: version %d service %q, want 1 and api", u.Version, u.Config.GetService())
		}
		// The outbound side records a request after the app has its
		// response; a second request on the same HTTP/1.1 connection is
		// only read once the first is recorded.
		get(t, c, "http://"+m.outbound+"/again", nil)
		rec = httptest.NewRecorder()
		m.client.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if want := `weft_requests_total{code="200",direction="outbound",peer="api",route="",subset=""} `; !strings.Contains(rec.Body.String(), want) {
			t.Errorf("client metrics lack %q:\n%s", want, rec.Body)
		}
	})
	t.Run("access log", func(t *testing.T) {
		want := "access inbound caller=" + webID + " dest=api method=GET path=/hello status=200"
		if !strings.Contains(m.serverLog.String(), want) {
			t.Errorf("server log lacks %q:\n%s", want, m.serverLog)
		}
	})
}

func TestNotReadyBeforeConfig(t *testing.T) {
	p := proxy.New(proxy.Options{Log: io.Discard})
	defer p.Close()
	rec := httptest.NewRecorder()
	p.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/ready", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "certificate") {
		t.Errorf("GET /ready without credentials: %d %q, want 503 naming the certificate", rec.Code, rec.Body)
	}
	setCreds(t, p, newCA(t), "web")
	rec = httptest.NewRecorder()
	p.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/ready", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "configuration") {
		t.Errorf("GET /ready without config: %d %q, want 503 naming the configuration", rec.Code, rec.Body)
	}
}

func TestH2CThroughMesh(t *testing.T) {
	m := newMesh(t, httpApp(t, true), meshapi.Protocol_PROTOCOL_HTTP2, allowWeb())
	resp, body := get(t, httpClient(true), "http://"+m.outbound+"/h2", nil)
	if resp.StatusCode != 200 || body != "hello /h2" {
		t.Fatalf("got %d %q, want 200", resp.StatusCode, body)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("app -> sidecar spoke %s, want HTTP/2.0", resp.Proto)
	}
	if got := resp.Header.Get("X-Seen-Proto"); got != "HTTP/2.0" {
		t.Errorf("sidecar -> app spoke %s, want HTTP/2.0 (h2c)", got)
	}
	if got := resp.Header.Get("X-Seen-Caller"); got != webID {
		t.Errorf("app saw caller %q, want %q", got, webID)
	}
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestGRPCThroughMesh(t *testing.T) {
	m := newMesh(t, grpcApp(t), meshapi.Protocol_PROTOCOL_GRPC, allowWeb())
	cc := dialGRPC(t, m.outbound)
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	var hdr metadata.MD
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("Check through the mesh: %v", err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %v, want SERVING", resp.Status)
	}
	if got := strings.Join(hdr.Get("x-seen-caller"), ","); got != webID {
		t.Errorf("app saw x-weft-caller %q, want %q", got, webID)
	}

	t.Run("server streaming", func(t *testing.T) {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		w, err := hc.Watch(sctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// The health server sends the first status at once and then holds
		// the stream open: it only arrives if the proxy flushes.
		msg, err := w.Recv()
		if err != nil {
			t.Fatalf("receiving the first watch message: %v", err)
		}
		if msg.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("watch status %v, want SERVING", msg.Status)
		}
	})
	t.Run("trailers-only status", func(t *testing.T) {
		// The app refuses an unknown method in a single HEADERS frame; the
		// status must survive both hops, whatever the flush timing.
		for i := range 20 {
			err := cc.Invoke(ctx, "/weft.test.Nope/Call", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
			if status.Code(err) != codes.Unimplemented {
				t.Fatalf("call %d of an unknown method: %v, want Unimplemented", i, err)
			}
		}
	})
	t.Run("unknown service status from trailers", func(t *testing.T) {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("Check of an unknown service: %v, want NotFound carried in trailers", err)
		}
	})
}

func TestGRPCDeniedAndUnavailable(t *testing.T) {
	m := newMesh(t, grpcApp(t), meshapi.Protocol_PROTOCOL_GRPC, &meshapi.Authz{})
	hc := healthpb.NewHealthClient(dialGRPC(t, m.outbound))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "intention") {
		t.Errorf("Check without an intention: %v, want PermissionDenied mentioning the intention", err)
	}

	apply(t, m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_GRPC, apiID))
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no healthy instances of service api") {
		t.Errorf("Check with no endpoints: %v, want Unavailable naming the service", err)
	}
}

func TestHTTPNoEndpoints(t *testing.T) {
	m := newMesh(t, httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	apply(t, m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID))
	resp, body := get(t, httpClient(false), "http://"+m.outbound+"/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no healthy instances of service api") {
		t.Errorf("got %d %q, want 503 naming the service", resp.StatusCode, body)
	}
}

func TestTCPThroughMesh(t *testing.T) {
	m := newMesh(t, echoApp(t, "echo:"), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	c, send := dialLine(t, m.outbound)
	for _, line := range []string{"one", "two"} {
		got, err := send(line)
		if err != nil || got != "echo:"+line {
			t.Fatalf("sent %q, got %q, %v", line, got, err)
		}
	}
	// Half-close: the app sees EOF, closes, and the close travels back.
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(wait))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after half-close: %d, %v, want EOF", n, err)
	}
}

func TestAuthz(t *testing.T) {
	allow, deny := meshapi.Action_ACTION_ALLOW, meshapi.Action_ACTION_DENY
	rule := func(src string, a meshapi.Action) *meshapi.AuthzRule {
		return &meshapi.AuthzRule{Source: src, Action: a}
	}
	cases := []struct {
		name  string
		authz *meshapi.Authz
		allow bool
	}{
		{"no rule: default deny", &meshapi.Authz{}, false},
		{"nil authz denies", nil, false},
		{"allow rule passes", allowWeb(), true},
		{"rule for another service does not", &meshapi.Authz{Rules: []*meshapi.AuthzRule{rule("billing", allow)}}, false},
		{"explicit deny beats wildcard allow", &meshapi.Authz{Rules: []*meshapi.AuthzRule{rule("*", allow), rule("web", deny)}}, false},
		{"exact allow beats wildcard deny", &meshapi.Authz{Rules: []*meshapi.AuthzRule{rule("*", deny), rule("web", allow)}}, true},
		{"deny wins among equals", &meshapi.Authz{Rules: []*meshapi.AuthzRule{rule("web", allow), rule("web", deny)}}, false},
		{"default allow", &meshapi.Authz{DefaultAction: allow}, true},
	}
	for _, tc := range cases {
		t.Run("http/"+tc.name, func(t *testing.T) {
			m := newMesh(t, httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, tc.authz)
			resp, body := get(t, httpClient(false), "http://"+m.outbound+"/x", nil)
			if tc.allow {
				if resp.StatusCode != 200 {
					t.Errorf("got %d %q, want 200", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, webID) || !strings.Contains(body, "api") || !strings.Contains(body, "intention") {
				t.Errorf("got %d %q, want 403 naming caller, destination and the intention", resp.StatusCode, body)
			}
			if !strings.Contains(m.serverLog.String(), "access inbound DENIED caller="+webID) {
				t.Errorf("server log has no DENIED line:\n%s", m.serverLog)
			}
		})
		t.Run("tcp/"+tc.name, func(t *testing.T) {
			m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, tc.authz)
			_, send := dialLine(t, m.outbound)
			got, err := send("hi")
			if tc.allow != (err == nil && got == "hi") {
				t.Errorf("allow=%v but got %q, %v", tc.allow, got, err)
			}
			if !tc.allow {
				rec := httptest.NewRecorder()
				m.server.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if want := `weft_authz_denied_total{peer="web"} 1`; !strings.Contains(rec.Body.String(), want) {
					t.Errorf("metrics lack %q", want)
				}
			}
		})
	}
}

// A client with a certificate from another CA (even one claiming the same
// trust domain), or with none, never reaches the app.
func TestInboundRefusesForeignCertificate(t *testing.T) {
	var hits atomic.Int32
	app := listen(t)
	go func() {
		for {
			c, err := app.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	m := newMesh(t, app.Addr(), meshapi.Protocol_PROTOCOL_TCP, &meshapi.Authz{DefaultAction: meshapi.Action_ACTION_ALLOW})
	other, err := proxytest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Leaf("default", "web", proxytest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"other CA", []tls.Certificate{foreign}},
		{"no certificate", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", m.server.Addr(proxy.KeyInbound).String(), &tls.Config{
				Certificates:       tc.certs,
				InsecureSkipVerify: true, // this test checks the server's side only
			})
			if err == nil {
				defer c.Close()
				c.SetDeadline(time.Now().Add(wait))
				c.Write([]byte("hello\n"))
				_, err = c.Read(make([]byte, 1))
			}
			if err == nil {
				t.Fatal("the inbound listener accepted the connection")
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("error %v, want a TLS alert about the certificate", err)
			}
		})
	}
	// The app was never dialled: hits is only read after the refusals.
	if n := hits.Load(); n != 0 {
		t.Errorf("the app got %d connections", n)
	}
	if !strings.Contains(m.serverLog.String(), "refused connection") {
		t.Errorf("the server log does not say it refused:\n%s", m.serverLog)
	}
}

// The outbound side refuses an endpoint whose sidecar is not the
// upstream's identity.
func TestOutboundRefusesWrongIdentity(t *testing.T) {
	billing := "spiffe://" + td + "/ns/default/svc/billing"
	t.Run("http", func(t *testing.T) {
		m := newMesh(t, httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
		apply(t, m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_HTTP, billing, m.server.Addr(proxy.KeyInbound)))
		resp, body := get(t, httpClient(false), "http://"+m.outbound+"/", nil)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, billing) {
			t.Errorf("got %d %q, want 502 naming the expected identity", resp.StatusCode, body)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
		apply(t, m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_TCP, billing, m.server.Addr(proxy.KeyInbound)))
		_, send := dialLine(t, m.outbound)
		if got, err := send("hi"); err == nil {
			t.Errorf("got %q through a sidecar with the wrong identity", got)
		}
		if !strings.Contains(m.clientLog.String(), "want "+billing) {
			t.Errorf("client log does not name the identity mismatch:\n%s", m.clientLog)
		}
	})
}

// Renewal and root rotation swap credentials under running listeners:
// established connections carry on, new ones use what was swapped in.
func TestCredentialSwapsKeepConnections(t *testing.T) {
	m := newMesh(t, echoApp(t, ""), meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	_, old := dialLine(t, m.outbound)
	if _, err := old("1"); err != nil {
		t.Fatal(err)
	}
	next, err := proxytest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	both := append(append([]byte{}, m.ca.RootPEM...), next.RootPEM...)

	// The client renews from the new root; the server trusts only the old.
	cert, err := next.Leaf("default", "web", proxytest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := proxy.NewCredentials(cert, both)
	if err != nil {
		t.Fatal(err)
	}
	m.client.SetCredentials(creds)
	_, refused := dialLine(t, m.outbound)
	if got, err := refused("2"); err == nil {
		t.Errorf("the server accepted a root it does not trust yet: %q", got)
	}

	// The server learns the new root, keeping its own certificate.
	srv, err := proxy.NewCredentials(m.server.Credentials().Cert, both)
	if err != nil {
		t.Fatal(err)
	}
	m.server.SetCredentials(srv)
	_, fresh := dialLine(t, m.outbound)
	if got, err := fresh("3"); err != nil || got != "3" {
		t.Errorf("after the rotation: %q, %v", got, err)
	}
	if got, err := old("4"); err != nil || got != "4" {
		t.Errorf("the connection made before both swaps: %q, %v", got, err)
	}
}
