package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/test/harness"
)

// gatewayPolicy is an ingress gateway "public" with an HTTPS listener
// (certificate from files, SNI list), a plain HTTP listener and a TLS
// passthrough listener, in front of web (two versions), api (flaky),
// echo (gRPC), secret (no intention from the gateway) and vault (TCP, its
// app ends TLS itself).
func gatewayPolicy(https, plain, pass, internal int, cert *harness.ServerCert) string {
	return fmt.Sprintf(`
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}
service "public" {
  binding "local" { name = "public" }
}
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  subset "v1" { meta = { version = "v1" } }
  subset "v2" { meta = { version = "v2" } }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
}
service "echo" {
  protocol = "grpc"
  binding "local" { name = "echo" }
}
service "secret" {
  protocol = "http"
  binding "local" { name = "secret" }
}
service "vault" {
  binding "local" { name = "vault" }
}

gateway "public" {
  listener "web" {
    port     = %d
    protocol = "https"
    tls {
      cert_file   = %q
      key_file    = %q
      sni         = ["shop.example.com", "*.example.com"]
      min_version = "1.2"
    }
    route "api" {
      hosts   = ["shop.example.com"]
      service = "api"
      match { path_prefix = "/api/" }
      retry {
        attempts = 3
        on       = ["5xx"]
      }
      request_headers { set = { "x-gateway-route" = "api" } }
    }
    route "canary" {
      hosts   = ["shop.example.com"]
      service = "web"
      match { path_prefix = "/canary/" }
      split "v1" { weight = 50 }
      split "v2" { weight = 50 }
    }
    route "shop" {
      hosts   = ["shop.example.com"]
      service = "web"
      split "v1" { weight = 100 }
      response_headers { set = { "x-served-by" = "gateway" } }
    }
    route "grpc" {
      hosts   = ["grpc.example.com"]
      service = "echo"
    }
    route "secret" {
      hosts   = ["secret.example.com"]
      service = "secret"
    }
  }
  listener "plain" {
    port     = %d
    protocol = "http"
    route "all" {
      service = "web"
    }
  }
  listener "internal" {
    port     = %d
    protocol = "https"
    tls { mesh_certificate = true }
    route "all" { service = "web" }
  }
  listener "pass" {
    port     = %d
    protocol = "tls"
    route "vault" {
      hosts   = ["vault.example.com"]
      service = "vault"
    }
  }
}

intention "public" "web"   { action = "allow" }
intention "public" "api"   { action = "allow" }
intention "public" "echo"  { action = "allow" }
intention "public" "vault" { action = "allow" }
`, https, cert.CertFile, cert.KeyFile, plain, internal, pass)
}

// seen answers with its name, the caller identity its sidecar passed and
// the gateway route header; on /ws it echoes WebSocket messages.
func seen(name string) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				kind, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				c.WriteMessage(kind, append([]byte(name+" echo: "), msg...))
			}
		}
		w.Header().Set("X-Instance", name)
		w.Header().Set("X-Seen-Caller", r.Header.Get("X-Weft-Caller"))
		w.Header().Set("X-Seen-Route", r.Header.Get("X-Gateway-Route"))
		fmt.Fprint(w, name)
	})
}

// tlsApp ends TLS itself (the passthrough's service) and answers every
// line with the server name it saw.
func tlsApp(cert *harness.ServerCert) func(net.Listener) {
	return func(ln net.Listener) {
		tl := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert.Cert}})
		harness.Serve(tl, func(c net.Conn) {
			defer c.Close()
			tc := c.(*tls.Conn)
			if tc.Handshake() != nil {
				return
			}
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "vault saw sni=%s line=%s\n", tc.ConnectionState().ServerName, sc.Text())
			}
		})
	}
}

type gatewayMesh struct {
	*mesh
	cert                         *harness.ServerCert
	https, plain, pass, internal string
}

func startGateway(t *testing.T, apiHits *atomic.Int64) *gatewayMesh {
	t.Helper()
	cert := harness.NewServerCert(t, t.TempDir(), "shop.example.com", "grpc.example.com", "secret.example.com", "vault.example.com", "other.example.com")
	ports, err := harness.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	m := start(t, gatewayPolicy(ports[0], ports[1], ports[2], ports[3], cert),
		inst{id: "public-1", svc: "public"},
		inst{id: "web-v1", svc: "web", meta: map[string]string{"version": "v1"}, app: seen("web-v1")},
		inst{id: "web-v2", svc: "web", meta: map[string]string{"version": "v2"}, app: seen("web-v2")},
		inst{id: "api-1", svc: "api", app: flaky(apiHits)},
		inst{id: "echo-1", svc: "echo", serve: grpcApp("echo-1", false, new(atomic.Int64))},
		inst{id: "secret-1", svc: "secret", app: seen("secret-1")},
		inst{id: "vault-1", svc: "vault", serve: tlsApp(cert)},
	)
	gw := m.get("public-1").proxy
	addr := func(name string) string {
		a := gw.Addr(proxy.KeyGateway(name))
		if a == nil {
			t.Fatalf("the gateway has no listener %s", name)
		}
		return a.String()
	}
	return &gatewayMesh{mesh: m, cert: cert, https: addr("web"), plain: addr("plain"), pass: addr("pass"), internal: addr("internal")}
}

// httpsClient is an outside client of the HTTPS listener: every host name
// resolves to it; h2 says whether it offers HTTP/2.
func (g *gatewayMesh) httpsClient(t *testing.T, h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: g.cert.Pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, g.https)
		},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}
}

func get(t *testing.T, c *http.Client, url string) (int, string, http.Header, *http.Response) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, resp
}

// TestGatewayHTTPS: an outside client reaches mesh services through the
// gateway over TLS (HTTP/1.1 and h2 by ALPN), routed by host and path;
// the callee sees the gateway's own SPIFFE identity; a route's split,
// retry and header changes apply; a service the gateway has no intention
// for refuses it; an unknown host gets 404.
func TestGatewayHTTPS(t *testing.T) {
	var apiHits atomic.Int64
	g := startGateway(t, &apiHits)
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := g.httpsClient(t, h2)
			code, body, h, resp := get(t, c, "https://shop.example.com/")
			wantProto := map[bool]int{false: 1, true: 2}[h2]
			if code != 200 || body != "web-v1" || resp.ProtoMajor != wantProto {
				t.Fatalf("GET shop.example.com/: %d %q over HTTP/%d, want 200 web-v1 over HTTP/%d", code, body, resp.ProtoMajor, wantProto)
			}
			if got := h.Get("X-Seen-Caller"); got != "spiffe://weft.local/ns/default/svc/public" {
				t.Errorf("web saw caller %q, want the gateway's identity spiffe://weft.local/ns/default/svc/public", got)
			}
			if h.Get("X-Served-By") != "gateway" {
				t.Errorf("response header x-served-by %q, want gateway (the route's response_headers)", h.Get("X-Served-By"))
			}
		})
	}
	c := g.httpsClient(t, true)

	// A split: both versions take part of /canary/.
	got := map[string]int{}
	for range 40 {
		code, body, _, _ := get(t, c, "https://shop.example.com/canary/x")
		if code != 200 {
			t.Fatalf("GET /canary/x: %d %q", code, body)
		}
		got[body]++
	}
	if got["web-v1"] == 0 || got["web-v2"] == 0 {
		t.Errorf("the 50/50 split sent %v, want both versions", got)
	}
	t.Logf("split of 40 requests: %v", got)

	// A retry: api fails every other request with 500; the route retries.
	for i := range 10 {
		code, body, _, _ := get(t, c, "https://shop.example.com/api/x")
		if code != 200 || body != "ok" {
			t.Fatalf("GET /api/x #%d: %d %q; the route's retry should hide api's every-other failure", i, code, body)
		}
	}
	if n := apiHits.Load(); n < 19 {
		t.Errorf("api saw %d requests for 10 calls, want about 20 (every failure retried)", n)
	}

	// No intention public -> secret: refused by secret's sidecar.
	// Its body stays inside the mesh: the outside client gets a generic
	// one, without identities or intentions (denied.go).
	if code, body, h, _ := get(t, c, "https://secret.example.com/"); code != http.StatusForbidden {
		t.Errorf("GET secret.example.com: %d %q, want 403 (no intention lets the gateway call secret)", code, body)
	} else if body != "weft gateway: access denied\n" || strings.Contains(body, "spiffe://") || h.Get(proxy.HeaderDenied) != "" {
		t.Errorf("GET secret.example.com: 403 with body %q and %s %q, want the generic body and no marker", body, proxy.HeaderDenied, h.Get(proxy.HeaderDenied))
	}
	// A host no route takes (but the certificate and SNI list cover).
	code, body, _, _ := get(t, c, "https://other.example.com/")
	if code != http.StatusNotFound || !strings.Contains(body, "no route") {
		t.Errorf("GET other.example.com: %d %q, want 404 naming the missing route", code, body)
	}

	// Plain HTTP listener: h1 and h2c.
	pc := client(t)
	if code, body, _ := do(t, pc, "GET", "http://"+g.plain+"/", nil); code != 200 || !strings.HasPrefix(body, "web-") {
		t.Errorf("plain listener: %d %q", code, body)
	}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(h2c.CloseIdleConnections)
	if code, body, _, resp := get(t, &http.Client{Transport: h2c, Timeout: wait}, "http://"+g.plain+"/"); code != 200 || resp.ProtoMajor != 2 {
		t.Errorf("plain listener, h2c: %d %q over HTTP/%d, want 200 over HTTP/2", code, body, resp.ProtoMajor)
	}

	// The listener with the gateway's mesh certificate: its identity is
	// what the client sees.
	mc := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // checked below: the URI SAN
	t.Cleanup(mc.CloseIdleConnections)
	code, body, _, resp := get(t, &http.Client{Transport: mc, Timeout: wait}, "https://"+g.internal+"/")
	if code != 200 || !strings.HasPrefix(body, "web-") {
		t.Errorf("mesh-certificate listener: %d %q", code, body)
	}
	if uris := resp.TLS.PeerCertificates[0].URIs; len(uris) != 1 || uris[0].String() != "spiffe://weft.local/ns/default/svc/public" {
		t.Errorf("mesh-certificate listener presented %v, want the gateway's SPIFFE ID", uris)
	}
}

// TestGatewayGRPCAndWebSocket: a gRPC call (h2 over TLS) and a WebSocket
// (HTTP/1.1 upgrade over TLS) cross the gateway.
func TestGatewayGRPCAndWebSocket(t *testing.T) {
	g := startGateway(t, new(atomic.Int64))
	creds := credentials.NewTLS(&tls.Config{RootCAs: g.cert.Pool, ServerName: "grpc.example.com"})
	cc, err := grpc.NewClient("passthrough:///"+g.https, grpc.WithTransportCredentials(creds), grpc.WithAuthority("grpc.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var hdr metadata.MD
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("gRPC health check through the gateway: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING || strings.Join(hdr.Get("x-instance"), "") != "echo-1" {
		t.Errorf("gRPC: status %v from %v, want SERVING from echo-1", resp.GetStatus(), hdr.Get("x-instance"))
	}

	d := websocket.Dialer{
		HandshakeTimeout: wait,
		TLSClientConfig:  &tls.Config{RootCAs: g.cert.Pool, ServerName: "shop.example.com"},
		NetDial:          func(network, _ string) (net.Conn, error) { return net.Dial(network, g.https) },
	}
	conn, _, err := d.Dial("wss://shop.example.com/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket through the gateway: %v", err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(wait))
	for i := range 3 {
		msg := "hello " + strconv.Itoa(i)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("reading echo %d: %v", i, err)
		}
		if string(got) != "web-v1 echo: "+msg {
			t.Errorf("echo %q, want %q", got, "web-v1 echo: "+msg)
		}
	}
}

// TestGatewayTLSPassthrough: a TLS listener routes by SNI without ending
// TLS: the client's handshake reaches vault's own app, over mTLS between
// the gateway and vault's sidecar; an SNI no route names is refused.
func TestGatewayTLSPassthrough(t *testing.T) {
	g := startGateway(t, new(atomic.Int64))
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", g.pass, &tls.Config{RootCAs: g.cert.Pool, ServerName: "vault.example.com"})
	if err != nil {
		t.Fatalf("TLS through the passthrough listener: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(c, "ping\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "vault saw sni=vault.example.com line=ping\n" {
		t.Fatalf("vault answered %q, %v", line, err)
	}
	// The certificate is vault's app's own (the gateway did not end TLS).
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "shop.example.com" {
		t.Errorf("peer certificate %q", cn)
	}

	bad, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", g.pass, &tls.Config{RootCAs: g.cert.Pool, ServerName: "other.example.com"})
	if err == nil {
		bad.SetDeadline(time.Now().Add(wait))
		_, err = bad.Read(make([]byte, 1))
		bad.Close()
	}
	if err == nil {
		t.Errorf("an SNI no route names was served")
	}
}

// TestGatewayHostile: plain HTTP on the TLS port gets a 400 that says to
// use https; an oversized SNI and an oversized or unlisted Host are
// refused; the gateway keeps serving.
func TestGatewayHostile(t *testing.T) {
	g := startGateway(t, new(atomic.Int64))

	// Plain HTTP to the HTTPS port.
	code, body, _ := do(t, client(t), "GET", "http://"+g.https+"/", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "https") {
		t.Errorf("plain HTTP on the TLS port: %d %q, want 400 saying to use https", code, body)
	}

	// An SNI of 300 bytes: the handshake is refused.
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 55) + ".example.com"
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", g.https, &tls.Config{RootCAs: g.cert.Pool, ServerName: long}); err == nil {
		t.Errorf("a %d-byte SNI was accepted", len(long))
	}
	// An SNI the listener does not answer for.
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", g.https, &tls.Config{RootCAs: g.cert.Pool, ServerName: "shop.example.org"}); err == nil {
		t.Errorf("an SNI outside the listener's list was accepted")
	}

	c := g.httpsClient(t, false)
	// A Host longer than a DNS name.
	req, _ := http.NewRequest("GET", "https://shop.example.com/", nil)
	req.Host = strings.Repeat("h", 300) + ".example.com"
	code, body, _, err := harness.Do(c, req)
	if err != nil || code != http.StatusBadRequest {
		t.Errorf("a 312-byte Host: %d %q %v, want 400", code, body, err)
	}
	// Headers past the limit: 431.
	req, _ = http.NewRequest("GET", "https://shop.example.com/", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 100<<10))
	code, _, _, err = harness.Do(c, req)
	if err != nil || code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: %d %v, want 431", code, err)
	}
	// Still serving.
	if code, body, _, _ := get(t, g.httpsClient(t, true), "https://shop.example.com/"); code != 200 || body != "web-v1" {
		t.Errorf("after the hostile requests: %d %q", code, body)
	}
}
