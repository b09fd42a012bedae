package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// engineProxy starts an api proxy whose inbound serves HTTP/1.1 with
// engine, in front of app, under authz.
func engineProxy(t *testing.T, ca *proxytest.CA, engine string, app *seenApp, authz *meshapi.Authz) (*proxy.Proxy, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second, HTTP1Engine: engine})
	setCreds(t, p, ca, "api")
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log of the %s proxy:\n%s", engine, lb)
		}
	})
	apply(t, p, 1, serverConfig(app.addr, meshapi.Protocol_PROTOCOL_HTTP, authz))
	return p, lb
}

// pathAuthz is spellingAuthz's rules on method and path only: the
// listener's rules read no header and no query.
func pathAuthz() *meshapi.Authz {
	deny := meshapi.Action_ACTION_DENY
	return &meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "web", Permissions: []*meshapi.Permission{
		{Action: deny, Match: &meshapi.RouteMatch{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: "/admin"}}},
		{Action: deny, Match: &meshapi.RouteMatch{Methods: []string{"DELETE"}}},
		{Action: deny, Match: &meshapi.RouteMatch{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_REGEX, Value: "^/private/[a-z]+$"}}},
		{Action: meshapi.Action_ACTION_ALLOW},
	}}}}
}

// engineCase is a request of engineCorpus; goRefuses marks those
// net/http's server refuses with its own answer, where the byte-level
// engine says what is wrong: only the status is compared.
type engineCase struct {
	name, head, body string
	goRefuses        bool
}

// engineCorpus is what TestInboundEnginesDecideAlike sends: the
// zero-trust spellings, the targets the authorization equivalence test
// reads with each method, and identity and forwarded headers a caller
// tries to spoof.
func engineCorpus() []engineCase {
	var c []engineCase
	for _, sp := range spellings {
		c = append(c, engineCase{sp.name, sp.head, "", sp.goRefuses})
	}
	targets := []string{"/admin", "/%61dmin", "//admin", "/x/../admin", "/./admin", "/%2e%2e/admin",
		"/admin;jsessionid=1", "/admin/users", "/admin//users", "/ADMIN/users", "/admin/", "/public/a",
		"/public/../admin", "/", "/private/abc", "/private/ABC", "/private/ab%63", "/private/abc;x=1",
		"/items?x=1&y=%41", "/items?", "/a%20b", "/caf%C3%A9", "/a+b"}
	for _, m := range []string{"GET", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "PURGE"} {
		for _, tg := range targets {
			c = append(c, engineCase{name: m + " " + tg, head: m + " " + tg + " HTTP/1.1\nHost: api"})
		}
	}
	for _, h := range []string{
		"X-Weft-Caller: spiffe://weft.test/ns/default/svc/forged",
		"x-weft-caller: forged",
		"X_Weft_Caller: forged",
		"X-Forwarded-Client-Cert: By=forged",
		"Connection: X-Weft-Caller\nX-Weft-Caller: forged",
		"X-Forwarded-For: 10.0.0.1",
		"X_Forwarded_For: 10.0.0.1",
		"Forwarded: for=10.0.0.1",
		"X-Request-Id: kept-1",
		"X-Request-Id: a b",
		"X-Request-Id: one\nX-Request-Id: two",
		"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"X-Weft-Unavailable: app",
		"Te: trailers",
		"Keep-Alive: 300\nConnection: keep-alive, X-Custom\nX-Custom: 1",
	} {
		c = append(c, engineCase{name: "header " + h, head: "GET /items HTTP/1.1\nHost: api\n" + h})
	}
	c = append(c,
		engineCase{name: "POST body", head: "POST /items HTTP/1.1\nHost: api\nContent-Length: 5", body: "hello"},
		engineCase{name: "POST chunked", head: "POST /items HTTP/1.1\nHost: api\nTransfer-Encoding: chunked", body: "5\r\nhello\r\n0\r\n\r\n"},
		engineCase{name: "denied POST body", head: "POST /admin HTTP/1.1\nHost: api\nContent-Length: 5", body: "hello"},
		engineCase{name: "HTTP/1.0", head: "GET /items HTTP/1.0\nHost: api", body: ""},
		engineCase{name: "absolute form", head: "GET http://api/items HTTP/1.1\nHost: api", body: ""},
	)
	return c
}

// seenView is what the app saw of a request, less what differs by
// design between any two requests (a generated request ID).
func seenView(r *http.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s host=%s len=%d\n", r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := r.Header[k]
		if k == "X-Request-Id" && len(v) == 1 && len(v[0]) == 36 {
			v = []string{"<generated>"}
		}
		fmt.Fprintf(&b, "%s: %q\n", k, v)
	}
	return b.String()
}

// TestInboundEnginesDecideAlike sends each request of engineCorpus, raw,
// to an inbound served by net/http and to one served by the byte-level
// engine, under rules that read method and path only and under rules
// that read headers and the query too: the status, the answer's body
// and what the application saw are the same, and the byte-level engine
// decided on every request its parser took (none was handed back to
// net/http).
func TestInboundEnginesDecideAlike(t *testing.T) {
	ca := newCA(t)
	cfg := webTLS(t, ca, "http/1.1")
	for _, rules := range []struct {
		name  string
		authz *meshapi.Authz
	}{{"method and path rules", pathAuthz()}, {"header and query rules", spellingAuthz()}} {
		t.Run(rules.name, func(t *testing.T) {
			oldApp, newApp := startSeenApp(t, false), startSeenApp(t, false)
			oldP, _ := engineProxy(t, ca, proxy.HTTP1NetHTTP, oldApp, rules.authz)
			newP, _ := engineProxy(t, ca, proxy.HTTP1Bytes, newApp, rules.authz)
			oldIn, newIn := oldP.Addr(proxy.KeyInbound).String(), newP.Addr(proxy.KeyInbound).String()
			decided := 0
			for _, tc := range engineCorpus() {
				before := newP.BytesServed()
				oldCode, oldBody := rawDo(t, oldIn, cfg, tc.head, tc.body)
				newCode, newBody := rawDo(t, newIn, cfg, tc.head, tc.body)
				served := newP.BytesServed() - before
				if oldCode != newCode || oldBody != newBody && !tc.goRefuses {
					t.Errorf("%s: net/http answered %d %q, the byte-level engine %d %q", tc.name, oldCode, oldBody, newCode, newBody)
				}
				oldSeen, newSeen := oldApp.take(), newApp.take()
				if len(oldSeen) != len(newSeen) {
					t.Errorf("%s: the app saw %d requests through net/http, %d through the byte-level engine", tc.name, len(oldSeen), len(newSeen))
					continue
				}
				for i := range oldSeen {
					if o, n := seenView(oldSeen[i]), seenView(newSeen[i]); o != n {
						t.Errorf("%s: the app saw through net/http:\n%s\nthrough the byte-level engine:\n%s", tc.name, o, n)
					}
				}
				if newCode != http.StatusBadRequest && served != 1 {
					t.Errorf("%s: the byte-level engine decided on %d requests, want 1 (handed to net/http?)", tc.name, served)
				}
				decided += int(served)
			}
			t.Logf("the byte-level engine decided on %d of %d requests (the rest its parser refused, as net/http's path refuses them)", decided, len(engineCorpus()))
		})
	}
}

// TestInboundEngineChoice: the byte-level engine decides on the requests
// of a listener whose configuration it serves, and hands the connection
// to net/http for a request that needs what it does not handle, which
// is then served as before (the app answers).
func TestInboundEngineChoice(t *testing.T) {
	ca := newCA(t)
	webID := "spiffe://" + td + "/ns/default/svc/web"
	collector := newCollector(t, false)
	for _, tc := range []struct {
		name   string
		change func(*meshapi.ProxyConfig)
		head   string
		alpn   string
		bytes  bool // the byte-level engine decides
	}{
		{name: "plain", head: "GET /x HTTP/1.1\nHost: api", bytes: true},
		{name: "POST", head: "POST /x HTTP/1.1\nHost: api\nContent-Length: 2", bytes: true},
		{name: "header rules", change: func(c *meshapi.ProxyConfig) { c.Inbound.Authz = spellingAuthz() }, head: "GET /x HTTP/1.1\nHost: api", bytes: true},
		{name: "rate limit", change: func(c *meshapi.ProxyConfig) {
			c.Inbound.RateLimits = []*meshapi.RateLimit{{Name: "l", RequestsPerSecond: 1000, Burst: 1000}}
		}, head: "GET /x HTTP/1.1\nHost: api", bytes: true},
		{name: "WebSocket upgrade", head: "GET /x HTTP/1.1\nHost: api\nConnection: Upgrade\nUpgrade: websocket", bytes: false},
		{name: "h2c upgrade", head: "GET /x HTTP/1.1\nHost: api\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA", bytes: false},
		{name: "gRPC content type", head: "POST /x HTTP/1.1\nHost: api\nContent-Type: application/grpc\nContent-Length: 2", bytes: false},
		{name: "HTTP/2", head: "GET /x HTTP/1.1\nHost: api", alpn: "h2", bytes: false},
		{name: "tracing on", change: func(c *meshapi.ProxyConfig) { c.Tracing = tracingConfig(collector.addr, 1, 512, 4096) },
			head: "GET /x HTTP/1.1\nHost: api", bytes: false},
		{name: "a gateway's forwarded headers", change: func(c *meshapi.ProxyConfig) { c.Inbound.ForwardingCallers = []string{webID} },
			head: "GET /x HTTP/1.1\nHost: api\nX-Forwarded-For: 192.0.2.1", bytes: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := startSeenApp(t, tc.alpn == "h2")
			lb := &logBuf{}
			p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second, HTTP1Engine: proxy.HTTP1Bytes})
			setCreds(t, p, ca, "api")
			t.Cleanup(func() { p.Close() })
			cfg := serverConfig(app.addr, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
			if tc.change != nil {
				tc.change(cfg)
			}
			apply(t, p, 1, cfg)
			in := p.Addr(proxy.KeyInbound).String()
			if tc.alpn == "h2" {
				c := &http.Client{Transport: &http.Transport{TLSClientConfig: webTLS(t, ca, "h2"), ForceAttemptHTTP2: true}}
				resp, err := c.Get("https://" + in + "/x")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
					t.Fatalf("over HTTP/2: %s %d", resp.Proto, resp.StatusCode)
				}
			} else {
				body := ""
				if strings.Contains(tc.head, "Content-Length: 2") {
					body = "hi"
				}
				code, got := rawDo(t, in, webTLS(t, ca, "http/1.1"), tc.head, body)
				if code != 200 {
					t.Fatalf("%d %q, want the app's 200", code, got)
				}
			}
			if seen := app.take(); len(seen) != 1 {
				t.Fatalf("the app saw %d requests, want 1", len(seen))
			}
			if got := p.BytesServed() == 1; got != tc.bytes {
				t.Errorf("the byte-level engine decided on %d requests; want it to decide: %v", p.BytesServed(), tc.bytes)
			}
		})
	}
}

// TestInboundBytesCloseClosesIdle: closing a proxy closes the byte-level
// engine's idle keep-alive connections at once, as net/http's Shutdown
// closes its own, rather than waiting out DrainTimeout.
func TestInboundBytesCloseClosesIdle(t *testing.T) {
	ca := newCA(t)
	app := startSeenApp(t, false)
	p := proxy.New(proxy.Options{Log: &logBuf{}, DrainTimeout: time.Minute, HTTP1Engine: proxy.HTTP1Bytes})
	setCreds(t, p, ca, "api")
	apply(t, p, 1, serverConfig(app.addr, meshapi.Protocol_PROTOCOL_HTTP, allowWeb()))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: webTLS(t, ca, "http/1.1")}}
	resp, err := c.Get("https://" + p.Addr(proxy.KeyInbound).String() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) // read to its end: the connection stays open
	resp.Body.Close()
	if p.BytesServed() != 1 {
		t.Fatalf("the byte-level engine decided on %d requests, want 1", p.BytesServed())
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
		t.Logf("Close returned in %s with a keep-alive connection idle", time.Since(start))
	case <-time.After(wait):
		t.Fatalf("Close did not return in %s with a keep-alive connection idle (DrainTimeout is a minute)", wait)
	}
}
