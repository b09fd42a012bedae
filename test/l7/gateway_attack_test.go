package l7

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/test/harness"
)

// attackPolicy is a gateway whose HTTPS listener answers only for
// shop.example.com (its SNI list) but also carries a route for
// admin.example.com, a route by path prefix /public/ and one by /admin/,
// and a plain HTTP listener; every service's app reports what it saw.
func attackPolicy(https, plain int, cert *harness.ServerCert, public string) string {
	return fmt.Sprintf(`
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}
service "public" {
  binding "local" { name = "public" }
%s
}
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}
service "admin" {
  protocol = "http"
  binding "local" { name = "admin" }
}
service "upgrader" {
  protocol = "http"
  binding "local" { name = "upgrader" }
}
gateway "public" {
  listener "web" {
    port     = %d
    protocol = "https"
    tls {
      cert_file = %q
      key_file  = %q
      sni       = ["shop.example.com"]
    }
    route "admin-host" {
      hosts   = ["admin.example.com"]
      service = "admin"
    }
    route "admin-path" {
      hosts   = ["shop.example.com"]
      service = "admin"
      match { path_prefix = "/admin/" }
    }
    route "public" {
      hosts   = ["shop.example.com"]
      service = "web"
      match { path_prefix = "/public/" }
    }
    route "upgrader" {
      hosts   = ["shop.example.com"]
      service = "upgrader"
      match { path_prefix = "/h2c/" }
    }
  }
  listener "plain" {
    port     = %d
    protocol = "http"
    route "all" { service = "web" }
  }
}
intention "public" "web"   { action = "allow" }
intention "public" "admin" { action = "allow" }
intention "public" "upgrader" { action = "allow" }
`, public, https, cert.CertFile, cert.KeyFile, plain)
}

// sawRequest is what an app of the attack mesh reports of a request.
type sawRequest struct {
	App    string      `json:"app"`
	Host   string      `json:"host"`
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// reporter answers with what it saw, and keeps it.
type reporter struct {
	mu   sync.Mutex
	seen []sawRequest
}

func (rp *reporter) app(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		s := sawRequest{App: name, Host: r.Host, URI: r.RequestURI, Header: r.Header, Body: string(b)}
		rp.mu.Lock()
		rp.seen = append(rp.seen, s)
		rp.mu.Unlock()
		json.NewEncoder(w).Encode(s)
	})
}

func (rp *reporter) all() []sawRequest {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]sawRequest(nil), rp.seen...)
}

type attackMesh struct {
	*mesh
	cert         *harness.ServerCert
	https, plain string
	rep          *reporter
}

func startAttackGateway(t *testing.T) *attackMesh {
	t.Helper()
	return startAttackGatewayWith(t, "")
}

// startAttackGatewayWith adds public, HCL, to the gateway's service.
func startAttackGatewayWith(t *testing.T, public string) *attackMesh {
	t.Helper()
	cert := harness.NewServerCert(t, t.TempDir(), "shop.example.com", "admin.example.com")
	ports, err := harness.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	rep := &reporter{}
	m := start(t, attackPolicy(ports[0], ports[1], cert, public),
		inst{id: "public-1", svc: "public"},
		inst{id: "web-1", svc: "web", app: rep.app("web")},
		inst{id: "admin-1", svc: "admin", app: rep.app("admin")},
		// An app that takes an HTTP/1.1 upgrade to h2c (RFC 7540 3.2),
		// as servers built on golang.org/x/net/http2/h2c do.
		inst{id: "upgrader-1", svc: "upgrader", app: h2c.NewHandler(rep.app("upgrader"), &http2.Server{})},
	)
	gw := m.get("public-1").proxy
	return &attackMesh{mesh: m, cert: cert, rep: rep,
		https: gw.Addr(proxy.KeyGateway("web")).String(), plain: gw.Addr(proxy.KeyGateway("plain")).String()}
}

// raw sends req, bytes as written, on a new TLS connection with server
// name sni (plain TCP when sni is ""), and reads one response.
func (g *attackMesh) raw(t *testing.T, sni, req string) (int, string) {
	t.Helper()
	var c net.Conn
	var err error
	if sni == "" {
		c, err = net.DialTimeout("tcp", g.plain, wait)
	} else {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", g.https,
			&tls.Config{RootCAs: g.cert.Pool, ServerName: sni, NextProtos: []string{"http/1.1"}})
	}
	if err != nil {
		t.Fatalf("dialing the gateway: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("writing: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "no response: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// served decodes what the app reported, or nil when the body is not an
// app's report (the gateway answered itself).
func served(body string) *sawRequest {
	var s sawRequest
	if json.Unmarshal([]byte(body), &s) != nil || s.App == "" {
		return nil
	}
	return &s
}

// TestGatewayAttackHost: every way to name a host other than the one the
// TLS handshake was for, or to spell one the routes know.
func TestGatewayAttackHost(t *testing.T) {
	g := startAttackGateway(t)
	for _, tc := range []struct {
		name, sni, req string
		want           int    // the status; -1: any refusal (4xx)
		app            string // who served it ("" none)
		host           string // the Host the app saw, when served
	}{
		{name: "control", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: shop.example.com\r\n\r\n", want: 200, app: "web", host: "shop.example.com"},
		{name: "domain fronting: TLS for shop, Host admin", sni: "shop.example.com", req: "GET / HTTP/1.1\r\nHost: admin.example.com\r\n\r\n", want: 421},
		{name: "fronting with the Host in capitals", sni: "shop.example.com", req: "GET / HTTP/1.1\r\nHost: ADMIN.Example.COM\r\n\r\n", want: 421},
		{name: "fronting with a trailing dot and port", sni: "shop.example.com", req: "GET / HTTP/1.1\r\nHost: admin.example.com.:443\r\n\r\n", want: 421},
		{name: "fronting by absolute URI", sni: "shop.example.com", req: "GET https://admin.example.com/ HTTP/1.1\r\nHost: shop.example.com\r\n\r\n", want: 421},
		{name: "absolute URI of the SNI's host, Host of another", sni: "shop.example.com", req: "GET https://shop.example.com/public/y HTTP/1.1\r\nHost: admin.example.com\r\n\r\n", want: 200, app: "web", host: "shop.example.com"},
		{name: "Host in capitals with a port", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: SHOP.example.com:443\r\n\r\n", want: 200, app: "web"},
		{name: "Host with a trailing dot", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: shop.example.com.\r\n\r\n", want: 200, app: "web"},
		{name: "Host with two trailing dots", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: shop.example.com..\r\n\r\n", want: -1},
		{name: "Host percent-encoded", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: shop%2eexample.com\r\n\r\n", want: -1},
		{name: "Host in punycode of another name", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: xn--shp-7ka.example.com\r\n\r\n", want: -1},
		{name: "Host in UTF-8", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: sh\xc3\xb6p.example.com\r\n\r\n", want: 400},
		{name: "Host given twice", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: shop.example.com\r\nHost: admin.example.com\r\n\r\n", want: 400},
		{name: "no Host", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\n\r\n", want: 400},
		{name: "HTTP/1.0 without Host", sni: "shop.example.com", req: "GET /public/x HTTP/1.0\r\n\r\n", want: -1},
		{name: "Host with userinfo", sni: "shop.example.com", req: "GET /public/x HTTP/1.1\r\nHost: admin.example.com@shop.example.com\r\n\r\n", want: 400},
		{name: "CONNECT to another host", sni: "shop.example.com", req: "CONNECT admin.example.com:443 HTTP/1.1\r\nHost: admin.example.com:443\r\n\r\n", want: -1},
		{name: "CONNECT to the SNI's host", sni: "shop.example.com", req: "CONNECT shop.example.com:443 HTTP/1.1\r\nHost: shop.example.com:443\r\n\r\n", want: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := g.raw(t, tc.sni, tc.req)
			s := served(body)
			if code != tc.want && !(tc.want == -1 && code >= 400 && code < 500) {
				t.Errorf("status %d (%.200q), want %d", code, body, tc.want)
			}
			switch {
			case tc.app == "" && s != nil:
				t.Errorf("app %s served it (saw Host %q, %q)", s.App, s.Host, s.URI)
			case tc.app != "" && (s == nil || s.App != tc.app):
				t.Errorf("served by %+v, want %s", s, tc.app)
			case tc.host != "" && s.Host != tc.host:
				t.Errorf("the app saw Host %q, want %q (the host the route was chosen by)", s.Host, tc.host)
			}
		})
	}
}

// TestGatewayAttackPath: spellings of a path that normalize onto another
// route: the app behind a route always sees a path that route takes.
func TestGatewayAttackPath(t *testing.T) {
	g := startAttackGateway(t)
	for _, path := range []string{
		"/public/../admin/x", "/public/%2e%2e/admin/x", "/public/%2E%2E/admin/x", "/public/.%2e/admin/x",
		"/public/..%2fadmin/x", "/public/%2e%2e%2fadmin/x", "/public/..;/admin/x", "/public/;/../admin/x",
		"//admin/x", "/public//../admin/x", "/public/..\\admin/x", "/public/%5c../admin/x",
		"/public/%252e%252e/admin/x", "/./admin/x", "/public/x/../../admin/x", "/PUBLIC/../admin/x",
		"/admin%2fx", "/public/x%00/../../admin/x", "/public/x?/../admin", "/public/x#/../../admin/x",
		"/public/.. /admin/x", "/public/\u2025/admin/x",
	} {
		t.Run(path, func(t *testing.T) {
			code, body := g.raw(t, "shop.example.com", "GET "+path+" HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
			s := served(body)
			if s == nil {
				if code < 400 {
					t.Errorf("status %d with no app's report: %.200q", code, body)
				}
				return
			}
			p := s.URI
			if i := strings.IndexByte(p, '?'); i >= 0 {
				p = p[:i]
			}
			prefix := map[string]string{"web": "/public/", "admin": "/admin/"}[s.App]
			if !strings.HasPrefix(p, prefix) || strings.Contains(p, "..") || strings.Contains(strings.ToLower(p), "%2e") {
				t.Errorf("app %s (route by %s) saw %q", s.App, prefix, s.URI)
			}
			t.Logf("%d: %s saw %s", code, s.App, s.URI)
		})
	}
}

// TestGatewayAttackSmuggling: framing that two HTTP/1.1 readers could
// split differently; the app must never see a request the client hid in
// another's body.
func TestGatewayAttackSmuggling(t *testing.T) {
	g := startAttackGateway(t)
	hidden := "GET /public/smuggled HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"
	for _, tc := range []struct{ name, req string }{
		{"CL and TE", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden},
		{"TE and CL", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + hidden},
		{"two CL", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 0\r\nContent-Length: 57\r\n\r\n" + hidden},
		{"CL list", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 0, 57\r\n\r\n" + hidden},
		{"CL with a plus", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: +57\r\n\r\n" + hidden},
		{"TE xchunked", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: xchunked\r\nContent-Length: 57\r\n\r\n" + hidden},
		{"TE chunked twice", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + hidden},
		{"TE with a tab", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + hidden},
		{"TE obs-fold", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + hidden},
		{"chunk size with junk", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\n\r\n0x0\r\n\r\n" + hidden},
		{"chunk extension with a LF", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nTransfer-Encoding: chunked\r\n\r\n2;\n\r\nxx\r\n0\r\n\r\n" + hidden},
		{"bare LF line ends", "POST /public/a HTTP/1.1\nHost: shop.example.com\nContent-Length: 0\n\n" + hidden},
		{"header name with a space", "POST /public/a HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length : 57\r\n\r\n" + hidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := g.raw(t, "shop.example.com", tc.req)
			t.Logf("%d %.120q", code, body)
		})
	}
	// A hidden request the client pipelined after the first is the
	// client's own second request, which the gateway parses, routes and
	// logs like any: no harm. Smuggling is a request the app sees that the
	// gateway did not parse as one: every request id the app saw must be
	// one the gateway routed.
	if code, _ := g.raw(t, "shop.example.com", "GET /public/last HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"); code != 200 {
		t.Fatalf("a plain request after the attempts: %d", code)
	}
	gwLog := g.get("public-1").log.String()
	for _, s := range g.rep.all() {
		id := s.Header.Get("X-Request-Id")
		if id == "" || !strings.Contains(gwLog, "access outbound") || !strings.Contains(gwLog, "request_id="+id) {
			t.Errorf("the app saw %s %q (request id %q) that the gateway never routed", s.App, s.URI, id)
		}
	}
}

// TestGatewayAttackUpgrade: an HTTP/1.1 upgrade to h2c through the plain
// and TLS listeners: the gateway must not let the app switch the
// connection to h2c (a tunnel past the gateway's routing and checks).
func TestGatewayAttackUpgrade(t *testing.T) {
	g := startAttackGateway(t)
	for _, path := range []string{"/public/x", "/h2c/x"} {
		for _, sni := range []string{"", "shop.example.com"} {
			up := "GET " + path + " HTTP/1.1\r\nHost: shop.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
			code, body := g.raw(t, sni, up)
			if code == http.StatusSwitchingProtocols {
				t.Errorf("%s, sni %q: the connection switched to h2c: a tunnel to the app past the gateway's routes and checks", path, sni)
				continue
			}
			s := served(body)
			if s == nil {
				t.Errorf("%s, sni %q: %d %.200q, want the app's answer without the upgrade", path, sni, code, body)
				continue
			}
			for k, v := range s.Header {
				if strings.EqualFold(k, "Upgrade") || strings.EqualFold(k, "Http2-Settings") || strings.Contains(strings.ToLower(strings.Join(v, ",")), "http2-settings") {
					t.Errorf("%s, sni %q: the app saw %s: %v", path, sni, k, v)
				}
			}
		}
	}
}

// TestGatewayAttackHeaders: many headers and many cookies: refused with
// 431 past the limits, and the gateway keeps serving.
func TestGatewayAttackHeaders(t *testing.T) {
	g := startAttackGateway(t)
	var many strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&many, "X-%d: v\r\n", i)
	}
	var cookies strings.Builder
	cookies.WriteString("Cookie: ")
	for i := range 5000 {
		fmt.Fprintf(&cookies, "c%d=v; ", i)
	}
	cookies.WriteString("\r\n")
	for _, tc := range []struct {
		name, headers string
		want          int
	}{
		{"5000 headers", many.String(), 431},
		{"5000 cookies in one header", cookies.String(), 200},
		{"one header of 70 KiB", "X-Big: " + strings.Repeat("a", 70<<10) + "\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := g.raw(t, "shop.example.com", "GET /public/x HTTP/1.1\r\nHost: shop.example.com\r\n"+tc.headers+"\r\n")
			if code != tc.want {
				t.Errorf("status %d (%.200q), want %d", code, body, tc.want)
			}
		})
	}
	if code, _ := g.raw(t, "shop.example.com", "GET /public/x HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"); code != 200 {
		t.Errorf("after the header bombs: %d", code)
	}
}

// h2conn is a raw HTTP/2 client connection to the gateway's HTTPS
// listener, for frames no well-behaved client sends.
type h2conn struct {
	c   *tls.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func (g *attackMesh) h2(t *testing.T, sni string) *h2conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", g.https,
		&tls.Config{RootCAs: g.cert.Pool, ServerName: sni, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("dialing the gateway: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	c.SetDeadline(time.Now().Add(3 * wait))
	h := &h2conn{c: c, fr: http2.NewFramer(c, c)}
	h.enc = hpack.NewEncoder(&h.buf)
	io.WriteString(c, http2.ClientPreface)
	h.fr.WriteSettings()
	return h
}

// headers sends a request's HEADERS (end of stream) on stream id.
func (h *h2conn) headers(t *testing.T, id uint32, fields ...string) {
	t.Helper()
	h.buf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.buf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatalf("writing HEADERS: %v", err)
	}
}

// response reads frames until stream id ends; it returns the status and
// body, or why it got none.
func (h *h2conn) response(t *testing.T, id uint32) (int, string) {
	t.Helper()
	status := 0
	var body bytes.Buffer
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			fmt.Sscan(f.Value, &status)
		}
	})
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return status, "connection: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				h.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			return status, "GOAWAY " + f.ErrCode.String()
		case *http2.HeadersFrame:
			if f.StreamID == id {
				dec.Write(f.HeaderBlockFragment())
				if f.StreamEnded() {
					return status, body.String()
				}
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				body.Write(f.Data())
				if f.StreamEnded() {
					return status, body.String()
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return status, "RST_STREAM " + f.ErrCode.String()
			}
		}
	}
}

// TestGatewayAttackH2: HTTP/2 spellings of a host (an :authority and a
// Host that disagree, or none), and a rapid reset flood: the gateway
// routes by the one host it also hands the app, and keeps serving.
func TestGatewayAttackH2(t *testing.T) {
	g := startAttackGateway(t)
	req := func(authority, host string) []string {
		f := []string{":method", "GET", ":scheme", "https", ":path", "/public/x"}
		if authority != "" {
			f = append(f, ":authority", authority)
		}
		if host != "" {
			f = append(f, "host", host)
		}
		return f
	}
	for _, tc := range []struct {
		name, authority, host string
		want                  int // -1: any refusal
		app, sawHost          string
	}{
		{"control", "shop.example.com", "", 200, "web", "shop.example.com"},
		{":authority shop, Host admin", "shop.example.com", "admin.example.com", -1, "", ""},
		{":authority admin, Host shop", "admin.example.com", "shop.example.com", -1, "", ""},
		{"Host alone, another host", "", "admin.example.com", 421, "", ""},
		{"Host alone", "", "shop.example.com", 200, "web", "shop.example.com"},
		{"neither", "", "", -1, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := g.h2(t, "shop.example.com")
			h.headers(t, 1, req(tc.authority, tc.host)...)
			code, body := h.response(t, 1)
			s := served(body)
			if code != tc.want && !(tc.want == -1 && (code == 0 || code >= 400 && code < 500)) {
				t.Errorf("status %d (%.200q), want %d", code, body, tc.want)
			}
			switch {
			case tc.app == "" && s != nil:
				t.Errorf("app %s served it, seeing Host %q", s.App, s.Host)
			case tc.app != "" && (s == nil || s.App != tc.app || s.Host != tc.sawHost):
				t.Errorf("served by %+v, want %s seeing Host %s", s, tc.app, tc.sawHost)
			}
		})
	}

	// Rapid reset (CVE-2023-44487): streams opened and cancelled at once,
	// far more than the concurrent stream limit.
	const streams = 2000
	h := g.h2(t, "shop.example.com")
	start := time.Now()
	var werr error
	for i := range streams {
		id := uint32(2*i + 1)
		h.headers(t, id, req("shop.example.com", "")...)
		if werr = h.fr.WriteRSTStream(id, http2.ErrCodeCancel); werr != nil {
			break
		}
	}
	// Whatever the gateway did with that connection, a well-behaved
	// client is served.
	code, _ := g.raw(t, "shop.example.com", "GET /public/after HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
	reached := 0
	for _, s := range g.rep.all() {
		if s.URI == "/public/x" {
			reached++
		}
	}
	t.Logf("rapid reset: %d streams opened and reset in %v (write error: %v); %d reached the app; a fresh request got %d",
		streams, time.Since(start).Round(time.Millisecond), werr, reached, code)
	if code != 200 {
		t.Errorf("after the rapid reset, a fresh request got %d, want 200", code)
	}
}

// TestGatewayAttackRateLimit: a per_source_ip limit on the gateway's
// service holds for clients outside the mesh (behind the gateway, a
// service's sidecar sees only the gateway's address), whatever
// forwarding headers they send.
func TestGatewayAttackRateLimit(t *testing.T) {
	g := startAttackGatewayWith(t, `
  protocol = "http"
  rate_limit "per-client" {
    requests_per_second = 0.01
    burst               = 3
    per_source_ip       = true
  }`)
	var codes []int
	for i := range 6 {
		code, body := g.raw(t, "shop.example.com", fmt.Sprintf("GET /public/x HTTP/1.1\r\nHost: shop.example.com\r\nX-Forwarded-For: 198.51.100.%d\r\nX-Real-IP: 198.51.100.%d\r\n\r\n", i, i))
		codes = append(codes, code)
		if i >= 3 && (code != http.StatusTooManyRequests || !strings.Contains(body, "per-client")) {
			t.Errorf("request %d from one client (burst 3): %d %.200q, want 429 naming the limit", i+1, code, body)
		}
		if i < 3 && code != 200 {
			t.Errorf("request %d within the burst: %d %.200q", i+1, code, body)
		}
	}
	t.Logf("statuses: %v", codes)
}

// TestGatewayAttackClientAddressHeaders: headers by which a client
// outside the mesh could claim another address never reach the app.
func TestGatewayAttackClientAddressHeaders(t *testing.T) {
	g := startAttackGateway(t)
	spoof := []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X_Forwarded_For", "Forwarded", "X-Real-Ip", "X_Real_IP", "True-Client-Ip", "X-Client-Ip", "Client-Ip", "X-Original-Forwarded-For", "X-Cluster-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip"}
	var req strings.Builder
	req.WriteString("GET /public/x HTTP/1.1\r\nHost: shop.example.com\r\n")
	for _, h := range spoof {
		fmt.Fprintf(&req, "%s: 198.51.100.9\r\n", h)
	}
	req.WriteString("\r\n")
	code, body := g.raw(t, "shop.example.com", req.String())
	s := served(body)
	if s == nil {
		t.Fatalf("%d %.200q", code, body)
	}
	for k, v := range s.Header {
		if strings.Contains(strings.Join(v, ","), "198.51.100.9") {
			t.Errorf("the app saw the client's %s: %v", k, v)
		}
	}
}

// TestGatewayAttackContinuation: a header block that never ends
// (HEADERS, then CONTINUATION frames without END_HEADERS; the 2024
// CONTINUATION flood): the gateway drops the connection once the block
// passes its header limit, long before the attacker is done, and keeps
// serving.
func TestGatewayAttackContinuation(t *testing.T) {
	g := startAttackGateway(t)
	h := g.h2(t, "shop.example.com")
	h.buf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/public/x"}, {":authority", "shop.example.com"}} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h.buf.Bytes()}); err != nil {
		t.Fatal(err)
	}
	// Each frame: one more literal header of 16 KiB, never indexed.
	h.buf.Reset()
	h.enc.WriteField(hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("a", 16<<10), Sensitive: true})
	frag := append([]byte(nil), h.buf.Bytes()...)
	const budget = 64 << 20 // what the attacker is ready to send
	sent := 0
	closed := make(chan error, 1)
	go func() {
		for {
			if _, err := h.fr.ReadFrame(); err != nil {
				closed <- err
				return
			}
		}
	}()
	var werr error
	for sent < budget {
		if werr = h.fr.WriteContinuation(1, false, frag); werr != nil {
			break
		}
		sent += len(frag)
	}
	t.Logf("the gateway stopped reading after %d KiB of one header block (write error: %v)", sent>>10, werr)
	if werr == nil {
		t.Errorf("the gateway read %d MiB of one header block without closing the connection", budget>>20)
	}
	select {
	case <-closed:
	case <-time.After(wait):
		t.Errorf("the connection stayed open %v after the flood", wait)
	}
	if code, _ := g.raw(t, "shop.example.com", "GET /public/after HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"); code != 200 {
		t.Errorf("after the CONTINUATION flood, a fresh request got %d", code)
	}
}
