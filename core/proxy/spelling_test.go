package proxy_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// seenApp is an application that records every request that reaches it.
type seenApp struct {
	addr net.Addr
	mu   sync.Mutex
	reqs []*http.Request // with Body nil
}

func startSeenApp(t *testing.T, h2c bool) *seenApp {
	t.Helper()
	a := &seenApp{}
	a.addr = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		r.Body = nil
		a.mu.Lock()
		a.reqs = append(a.reqs, r)
		a.mu.Unlock()
		io.WriteString(w, "app saw "+r.Method+" "+r.RequestURI)
	}), h2c)
	return a
}

// take returns the requests seen since the last take.
func (a *seenApp) take() []*http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.reqs
	a.reqs = nil
	return r
}

// webTLS is what a "web" sidecar presents to an inbound listener, for
// tests that speak to it directly, as a hostile mesh member could.
func webTLS(t *testing.T, ca *proxytest.CA, protos ...string) *tls.Config {
	t.Helper()
	cert, err := ca.Leaf("default", "web", proxytest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // these tests check the server's side only
		NextProtos:         protos,
	}
}

// rawDo writes head (request line and headers, "\n" for line ends) and
// body on a new connection to addr, over TLS when cfg is set, and reads
// the response. net/http's client would clean up some of the spellings
// these tests send, so the request goes out byte for byte.
func rawDo(t *testing.T, addr string, cfg *tls.Config, head, body string) (int, string) {
	t.Helper()
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: wait}
	if cfg != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	msg := strings.ReplaceAll(strings.TrimSuffix(head, "\n"), "\n", "\r\n") + "\r\nConnection: close\r\n\r\n" + body
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", head, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// spellingAuthz lets web call api but for /admin, DELETE, a request
// with X-Role: admin and one with a debug query parameter.
func spellingAuthz() *meshapi.Authz {
	deny := meshapi.Action_ACTION_DENY
	return &meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "web", Permissions: []*meshapi.Permission{
		{Action: deny, Match: &meshapi.RouteMatch{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: "/admin"}}},
		{Action: deny, Match: &meshapi.RouteMatch{Methods: []string{"DELETE"}}},
		{Action: deny, Match: &meshapi.RouteMatch{Headers: []*meshapi.KeyMatch{{Name: "x-role", Match: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_EXACT, Value: "admin"}}}}},
		{Action: deny, Match: &meshapi.RouteMatch{Query: []*meshapi.KeyMatch{{Name: "debug", Match: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PRESENT}}}}},
		{Action: meshapi.Action_ACTION_ALLOW},
	}}}}
}

// spellings are requests that a deny above must refuse however they are
// spelled: want is 403 (the rule held on the canonical request) or 400
// (a spelling the proxy refuses outright). goRefuses marks the ones
// net/http's server refuses before the proxy sees them.
var spellings = []struct {
	name, head string
	want       int
	goRefuses  bool
}{
	{"plain", "GET /admin HTTP/1.1\nHost: api", 403, false},
	{"double slash", "GET //admin HTTP/1.1\nHost: api", 403, false},
	{"many slashes", "GET ///x/..//admin/ HTTP/1.1\nHost: api", 403, false},
	{"dot", "GET /./admin HTTP/1.1\nHost: api", 403, false},
	{"dot-dot", "GET /x/../admin HTTP/1.1\nHost: api", 403, false},
	{"dot-dot above root", "GET /../../admin HTTP/1.1\nHost: api", 403, false},
	{"encoded dot-dot", "GET /%2e%2e/admin HTTP/1.1\nHost: api", 403, false},
	{"encoded dot-dot, mixed", "GET /x/%2E%2e/admin HTTP/1.1\nHost: api", 403, false},
	{"half-encoded dot-dot", "GET /x/.%2e/admin HTTP/1.1\nHost: api", 403, false},
	{"encoded letter", "GET /%61dmin HTTP/1.1\nHost: api", 403, false},
	{"all encoded", "GET /%61%64%6D%69%6e/x HTTP/1.1\nHost: api", 403, false},
	{"path parameter", "GET /admin;jsessionid=1 HTTP/1.1\nHost: api", 403, false},
	{"absolute form", "GET http://api/%61dmin HTTP/1.1\nHost: api", 403, false},
	{"encoded slash", "GET /admin%2fx HTTP/1.1\nHost: api", 400, false},
	{"encoded slash dot-dot", "GET /x%2f..%2fadmin HTTP/1.1\nHost: api", 400, false},
	{"encoded slash upper", "GET /x%2F..%2Fadmin HTTP/1.1\nHost: api", 400, false},
	{"encoded backslash", "GET /x%5c..%5cadmin HTTP/1.1\nHost: api", 400, false},
	{"backslash", "GET /x\\..\\admin HTTP/1.1\nHost: api", 400, false},
	{"NUL", "GET /admin%00 HTTP/1.1\nHost: api", 400, false},
	{"encoded newline", "GET /x%0a/../admin HTTP/1.1\nHost: api", 400, false},
	{"dot-dot with parameter", "GET /x/..;/admin HTTP/1.1\nHost: api", 400, false},
	{"encoded dot-dot with parameter", "GET /x/%2e%2e;/admin HTTP/1.1\nHost: api", 400, false},
	{"invalid encoding", "GET /%zzadmin HTTP/1.1\nHost: api", 400, true},
	{"no leading slash", "GET admin HTTP/1.1\nHost: api", 400, true},
	{"star for GET", "GET * HTTP/1.1\nHost: api", 400, false},
	{"DELETE", "DELETE /items/1 HTTP/1.1\nHost: api", 403, false},
	{"delete", "delete /items/1 HTTP/1.1\nHost: api", 400, false},
	{"Delete", "Delete /items/1 HTTP/1.1\nHost: api", 400, false},
	{"dElEtE", "dElEtE /items/1 HTTP/1.1\nHost: api", 400, false},
	{"header", "GET /items HTTP/1.1\nHost: api\nX-Role: admin", 403, false},
	{"header name case", "GET /items HTTP/1.1\nHost: api\nx-ROLE: admin", 403, false},
	{"header twice", "GET /items HTTP/1.1\nHost: api\nX-Role: user\nX-Role: admin", 400, false},
	{"header underscore", "GET /items HTTP/1.1\nHost: api\nX_Role: admin", 400, false},
	{"query", "GET /items?debug HTTP/1.1\nHost: api", 403, false},
	{"query encoded name", "GET /items?%64ebug=1 HTTP/1.1\nHost: api", 403, false},
	{"query semicolon", "GET /items?x=1;debug=1 HTTP/1.1\nHost: api", 400, false},
	{"query twice", "GET /items?debug=0&debug=1 HTTP/1.1\nHost: api", 400, false},
	{"query name case", "GET /items?DEBUG=1 HTTP/1.1\nHost: api", 400, false},
	{"query bad encoding", "GET /items?a=%zz&debug=1 HTTP/1.1\nHost: api", 400, false},
}

// TestSpellingsCannotWalkAroundRules sends every spelling of a denied
// request, raw, through the caller's sidecar and straight to the
// callee's inbound (as a mesh member that skips its own sidecar could):
// each is refused, and the application sees none of them.
func TestSpellingsCannotWalkAroundRules(t *testing.T) {
	app := startSeenApp(t, false)
	m := newMesh(t, app.addr, meshapi.Protocol_PROTOCOL_HTTP, spellingAuthz())
	paths := []struct {
		name string
		addr string
		tls  *tls.Config
	}{
		{"through the outbound", m.outbound, nil},
		{"straight to the inbound", m.server.Addr(proxy.KeyInbound).String(), webTLS(t, m.ca, "http/1.1")},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			for _, sp := range spellings {
				t.Run(sp.name, func(t *testing.T) {
					code, body := rawDo(t, p.addr, p.tls, sp.head, "")
					if code != sp.want {
						t.Errorf("%q: %d %q, want %d", sp.head, code, body, sp.want)
					}
					if !sp.goRefuses && !strings.HasPrefix(body, "weft: ") {
						t.Errorf("%q: the refusal %q is not the proxy's", sp.head, body)
					}
					if seen := app.take(); len(seen) > 0 {
						t.Errorf("%q reached the app as %s %s", sp.head, seen[0].Method, seen[0].RequestURI)
					}
				})
			}
			// The app is reachable: an allowed request gets through.
			if code, body := rawDo(t, p.addr, p.tls, "GET /items/1 HTTP/1.1\nHost: api", ""); code != 200 {
				t.Fatalf("an allowed request: %d %q", code, body)
			}
			if seen := app.take(); len(seen) != 1 || seen[0].RequestURI != "/items/1" {
				t.Errorf("the app saw %d requests, want the allowed one", len(seen))
			}
		})
	}
	// The outbound refuses what it cannot route by itself: the inbound
	// never hears of it.
	if !strings.Contains(m.clientLog.String(), "access outbound REFUSED dest=api method=delete") {
		t.Errorf("the outbound did not refuse \"delete\" itself:\n%s", m.clientLog)
	}
}

// TestSpellingsOverHTTP2: the same guards hold when the request comes
// to the inbound over HTTP/2, where the path and method are pseudo-headers.
func TestSpellingsOverHTTP2(t *testing.T) {
	app := startSeenApp(t, true)
	m := newMesh(t, app.addr, meshapi.Protocol_PROTOCOL_HTTP2, spellingAuthz())
	tr := &http.Transport{TLSClientConfig: webTLS(t, m.ca, "h2"), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	inbound := m.server.Addr(proxy.KeyInbound).String()
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/x/../admin", 403},
		{"GET", "/%2e%2e/admin", 403},
		{"GET", "/%61dmin", 403},
		{"GET", "/admin;x", 403},
		{"GET", "/admin%2fx", 400},
		{"GET", "/x/..;/admin", 400},
		{"DELETE", "/items/1", 403},
		{"delete", "/items/1", 400},
		{"GET", "/items/1", 200},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "https://"+inbound+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tt.path // sent as :path, byte for byte
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("spoke %s, want HTTP/2", resp.Proto)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s: %d %q, want %d", tt.method, tt.path, resp.StatusCode, b, tt.want)
			}
			seen := app.take()
			switch {
			case tt.want == 200 && (len(seen) != 1 || seen[0].RequestURI != tt.path):
				t.Errorf("the app saw %d requests, want %s", len(seen), tt.path)
			case tt.want != 200 && len(seen) > 0:
				t.Errorf("%s %s reached the app as %s", tt.method, tt.path, seen[0].RequestURI)
			}
		})
	}
}

// TestAppSeesCanonicalPath: what the rules matched is what the app gets.
func TestAppSeesCanonicalPath(t *testing.T) {
	app := startSeenApp(t, false)
	m := newMesh(t, app.addr, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	for _, tt := range []struct{ target, want string }{
		{"/a//b/./c/../d?q=%2e%2e", "/a/b/d?q=%2e%2e"},
		{"/%7e%61/%c3%a9", "/~a/%C3%A9"},
		{"/a;p=1/b", "/a;p=1/b"},
	} {
		code, body := rawDo(t, m.outbound, nil, "GET "+tt.target+" HTTP/1.1\nHost: api", "")
		seen := app.take()
		if code != 200 || len(seen) != 1 || seen[0].RequestURI != tt.want {
			t.Errorf("GET %s: %d %q, want the app to see %s", tt.target, code, body, tt.want)
		}
	}
}

// TestOutboundRoutesCanonicalPath: routes match the canonical path too.
func TestOutboundRoutesCanonicalPath(t *testing.T) {
	app := startSeenApp(t, false)
	m := &mesh{ca: newCA(t)}
	m.server, m.serverLog = newProxy(t, m.ca, "api")
	m.client, m.clientLog = newProxy(t, m.ca, "web")
	apply(t, m.server, 1, serverConfig(app.addr, meshapi.Protocol_PROTOCOL_HTTP, allowWeb()))
	cfg := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, m.server.Addr(proxy.KeyInbound))
	cfg.Upstreams[0].Routes = []*meshapi.Route{{
		Name:           "admin",
		Matches:        []*meshapi.RouteMatch{{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: "/admin"}}},
		RequestHeaders: &meshapi.HeaderOps{Set: map[string]string{"X-Route": "admin"}},
	}}
	apply(t, m.client, 1, cfg)
	out := m.client.Addr(proxy.KeyUpstream("api")).String()
	for _, target := range []string{"/admin", "/%61dmin", "//admin", "/x/../admin", "/admin;v=1"} {
		code, body := rawDo(t, out, nil, "GET "+target+" HTTP/1.1\nHost: api", "")
		seen := app.take()
		if code != 200 || len(seen) != 1 || seen[0].Header.Get("X-Route") != "admin" {
			t.Errorf("GET %s: %d %q, not routed by the route on /admin", target, code, body)
		}
	}
}

// TestIdentityHeadersCannotBeDropped: a client that names the identity
// headers in Connection (so that a proxy drops them as hop-by-hop) or
// forges them, in any spelling, never keeps the app from seeing the
// verified caller, on every path to the app: HTTP/1.1 through the pool,
// a streamed body through the fallback transport, and h2c.
func TestIdentityHeadersCannotBeDropped(t *testing.T) {
	const forged = "spiffe://weft.test/ns/default/svc/admin"
	head := "Host: api\nConnection: X-Weft-Caller, X-Forwarded-Client-Cert\nConnection: keep-alive, x-weft-caller\n" +
		"X-Weft-Caller: " + forged + "\nX-Forwarded-Client-Cert: By=" + forged + ";URI=" + forged + "\nX_Weft_Caller: " + forged
	for _, tt := range []struct {
		name  string
		proto meshapi.Protocol
		h2c   bool
		req   string
		body  string
	}{
		{"http, pooled", meshapi.Protocol_PROTOCOL_HTTP, false, "GET /who HTTP/1.1\n" + head, ""},
		{"http, streamed body", meshapi.Protocol_PROTOCOL_HTTP, false, "POST /who HTTP/1.1\nTransfer-Encoding: chunked\n" + head, "5\r\nhello\r\n0\r\n\r\n"},
		{"http2", meshapi.Protocol_PROTOCOL_HTTP2, true, "GET /who HTTP/1.1\n" + head, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			app := startSeenApp(t, tt.h2c)
			m := newMesh(t, app.addr, tt.proto, allowWeb())
			for _, to := range []struct {
				name string
				addr string
				tls  *tls.Config
			}{
				{"through the outbound", m.outbound, nil},
				{"straight to the inbound", m.server.Addr(proxy.KeyInbound).String(), webTLS(t, m.ca, "http/1.1")},
			} {
				t.Run(to.name, func(t *testing.T) {
					code, body := rawDo(t, to.addr, to.tls, tt.req, tt.body)
					seen := app.take()
					if code != 200 || len(seen) != 1 {
						t.Fatalf("%d %q, the app saw %d requests; want 200 and 1", code, body, len(seen))
					}
					h := seen[0].Header
					if got := h.Values("X-Weft-Caller"); len(got) != 1 || got[0] != webID {
						t.Errorf("the app saw X-Weft-Caller %q, want only %q", got, webID)
					}
					if got, want := h.Values("X-Forwarded-Client-Cert"), "By="+apiID+";URI="+webID; len(got) != 1 || got[0] != want {
						t.Errorf("the app saw X-Forwarded-Client-Cert %q, want only %q", got, want)
					}
					for k, vs := range h {
						for _, v := range vs {
							if strings.Contains(v, forged) {
								t.Errorf("the forged identity reached the app in %s: %q", k, v)
							}
						}
					}
				})
			}
		})
	}
}

// TestAccessLogCannotBeForged: request input that decodes to a line
// break, a NUL or a field of its own stays inside one quoted field of one
// line.
func TestAccessLogCannotBeForged(t *testing.T) {
	app := startSeenApp(t, false)
	m := newMesh(t, app.addr, meshapi.Protocol_PROTOCOL_HTTP, spellingAuthz())
	in := m.server.Addr(proxy.KeyInbound).String()
	cfg := webTLS(t, m.ca, "http/1.1")
	for _, tt := range []struct{ head, want string }{
		// Refused (400): logged with the path as net/http decoded it.
		{"GET /x%0aaccess%20inbound%20caller=forged%20status=200 HTTP/1.1\nHost: api", `path="/x\naccess inbound caller=forged status=200" status=400`},
		{"GET /x%00y HTTP/1.1\nHost: api", `path="/x\x00y" status=400`},
		// Denied (403): the reason names the path.
		{"GET /admin/%20status=200%20forged=1 HTTP/1.1\nHost: api", `path="/admin/ status=200 forged=1" reason="weft: `},
		// Allowed.
		{"GET /ok%20status=500 HTTP/1.1\nHost: api", `path="/ok status=500" status=200`},
		// The method is quoted too.
		{"GET\"x /ok HTTP/1.1\nHost: api", ``},
	} {
		rawDo(t, in, cfg, tt.head, "")
		if tt.want != "" && !strings.Contains(m.serverLog.String(), tt.want) {
			t.Errorf("after %q the log lacks %s:\n%s", tt.head, tt.want, m.serverLog)
		}
	}
	log := m.serverLog.String()
	if strings.ContainsRune(log, 0) {
		t.Errorf("the log has a NUL byte:\n%q", log)
	}
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		// Past the date and time the log package writes first.
		if f := strings.SplitN(line, " ", 3); len(f) == 3 && (strings.HasPrefix(f[2], "access inbound caller=forged") || strings.HasPrefix(f[2], "forged")) {
			t.Errorf("a forged line: %q", line)
		}
		if strings.Count(line, " status=") > 1 && !strings.Contains(line, `"`) {
			t.Errorf("a line with a forged field: %q", line)
		}
	}
}

// TestStalePostIsNotResent: a POST whose pooled connection to the app
// breaks after the app read it reaches the app once, and the client gets
// 502; it is not sent again on a new connection.
func TestStalePostIsNotResent(t *testing.T) {
	got := make(chan string, 16)
	app := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			got <- req.Method + " " + req.URL.Path
			if req.Method != "GET" {
				return // read, acted on, and the connection closed without an answer
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	m := newMesh(t, app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	c := httpClient(false)
	defer c.CloseIdleConnections()
	if resp, body := get(t, c, "http://"+m.outbound+"/warm", nil); resp.StatusCode != 200 {
		t.Fatalf("warming up: %d %q", resp.StatusCode, body)
	}
	<-got
	for _, method := range []string{"POST", "DELETE"} {
		req, _ := http.NewRequest(method, "http://"+m.outbound+"/once", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s on a connection the app closed: %d, want 502", method, resp.StatusCode)
		}
		n := 0
	drain:
		for {
			select {
			case r := <-got:
				if r == method+" /once" {
					n++
				}
			default:
				break drain
			}
		}
		if n != 1 {
			t.Errorf("the app got the %s %d times, want once", method, n)
		}
		// Warm a pooled connection again for the next method.
		if resp, body := get(t, c, "http://"+m.outbound+"/warm", nil); resp.StatusCode != 200 {
			t.Fatalf("warming up: %d %q", resp.StatusCode, body)
		}
		<-got
	}
}
