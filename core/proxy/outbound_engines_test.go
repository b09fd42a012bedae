package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// failingSeenApp is a seenApp that answers 500 to paths under /fail.
func failingSeenApp(t *testing.T) *seenApp {
	t.Helper()
	a := &seenApp{}
	a.addr = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		r.Body = nil
		a.mu.Lock()
		a.reqs = append(a.reqs, r)
		a.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, "app saw "+r.Method+" "+r.RequestURI)
	}), false)
	return a
}

// outboundRoutes are the routes of the differential test: every one
// sends its requests to one subset, so that where a request went says
// which route took it; withHeader adds a route on a header.
func outboundRoutes(withHeader bool) []*meshapi.Route {
	one := func(subset string) []*meshapi.Split { return []*meshapi.Split{{Subset: subset, Weight: 1}} }
	prefix := func(p string) *meshapi.StringMatch {
		return &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: p}
	}
	var routes []*meshapi.Route
	if withHeader {
		routes = append(routes, &meshapi.Route{Name: "canary", Splits: one("v2"), Matches: []*meshapi.RouteMatch{{
			Headers: []*meshapi.KeyMatch{{Name: "X-Role", Match: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_EXACT, Value: "admin"}}}}}})
	}
	return append(routes,
		&meshapi.Route{Name: "admin", Splits: one("v2"), Matches: []*meshapi.RouteMatch{{Path: prefix("/admin")}}},
		&meshapi.Route{Name: "deletes", Splits: one("v2"), Matches: []*meshapi.RouteMatch{{Methods: []string{"DELETE"}}}},
		&meshapi.Route{Name: "fail", Splits: one("v1"), Matches: []*meshapi.RouteMatch{{Path: prefix("/fail")}},
			Retry: &meshapi.RetryPolicy{Attempts: 3, RetryOn: []string{"5xx"}, BudgetPercent: 100, BudgetMinPerSecond: 1000}},
		&meshapi.Route{Name: "rest", Splits: one("v1")},
	)
}

// outboundCorpus is engineCorpus (the zero-trust spellings, targets that
// routes on the canonical path must see alike, spoofed identity and
// forwarded headers) and requests that try the outbound's own paths:
// retries, bodies, 100-continue, HEAD, HTTP/1.0, hop-by-hop fields.
func outboundCorpus() []engineCase {
	c := engineCorpus()
	for _, m := range []string{"GET", "POST", "HEAD", "PUT"} {
		c = append(c, engineCase{name: m + " retried", head: m + " /fail/x HTTP/1.1\nHost: api"})
	}
	return append(c,
		engineCase{name: "POST body retried", head: "POST /fail HTTP/1.1\nHost: api\nContent-Length: 5", body: "hello"},
		engineCase{name: "expect 100-continue", head: "PUT /items HTTP/1.1\nHost: api\nExpect: 100-continue\nContent-Length: 3", body: "abc"},
		engineCase{name: "POST empty", head: "POST /items HTTP/1.1\nHost: api\nContent-Length: 0"},
		engineCase{name: "POST no length", head: "POST /items HTTP/1.1\nHost: api"},
		engineCase{name: "body of 8 KiB", head: "POST /items HTTP/1.1\nHost: api\nContent-Length: 8192", body: strings.Repeat("b", 8192)},
		engineCase{name: "body past the replay size", head: "POST /items HTTP/1.1\nHost: api\nContent-Length: 9000", body: strings.Repeat("b", 9000)},
		engineCase{name: "chunked with trailer", head: "POST /items HTTP/1.1\nHost: api\nTransfer-Encoding: chunked\nTrailer: X-T", body: "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"},
		engineCase{name: "HEAD", head: "HEAD /items HTTP/1.1\nHost: api"},
		engineCase{name: "HTTP/1.0 keep-alive", head: "GET /items HTTP/1.0\nHost: api\nConnection: keep-alive"},
		engineCase{name: "X-Role admin", head: "GET /items HTTP/1.1\nHost: api\nX-Role: admin"},
		engineCase{name: "x-role admin", head: "GET /items HTTP/1.1\nHost: api\nx-role: admin"},
		engineCase{name: "X-Role twice", head: "GET /items HTTP/1.1\nHost: api\nX-Role: user\nX-Role: admin"},
		engineCase{name: "Idempotency-Key", head: "POST /items HTTP/1.1\nHost: api\nIdempotency-Key: k1\nContent-Length: 1", body: "x"},
		engineCase{name: "empty value", head: "GET /items HTTP/1.1\nHost: api\nX-Empty:"},
		engineCase{name: "long value", head: "GET /items HTTP/1.1\nHost: api\nX-Long: " + strings.Repeat("v", 4000)},
		engineCase{name: "many fields", head: "GET /items HTTP/1.1\nHost: api" + strings.Repeat("\nX-Many: 1", 40)},
		engineCase{name: "X-Forwarded-Host", head: "GET /items HTTP/1.1\nHost: api\nX-Forwarded-Host: evil\nX-Forwarded-Proto: https"},
		engineCase{name: "Host with port", head: "GET /items HTTP/1.1\nHost: api:8080"},
		engineCase{name: "WebSocket upgrade", head: "GET /ws HTTP/1.1\nHost: api\nConnection: Upgrade\nUpgrade: websocket"},
	)
}

// outboundEngineWeb starts a web proxy whose outbound serves HTTP/1.1
// with engine, its upstream api's endpoints a (subset v1) and b (v2).
func outboundEngineWeb(t *testing.T, ca *proxytest.CA, engine string, routes []*meshapi.Route, a, b net.Addr) *proxy.Proxy {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second, HTTP1Engine: engine})
	setCreds(t, p, ca, "web")
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log of the web proxy (%s):\n%s", engine, lb)
		}
	})
	cfg := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, a, b)
	up := cfg.Upstreams[0]
	up.Endpoints[0].Subsets = []string{"v1"}
	up.Endpoints[1].Subsets = []string{"v2"}
	up.Routes = routes
	apply(t, p, 1, cfg)
	return p
}

// TestOutboundEnginesDecideAlike sends each request of outboundCorpus,
// raw, to an outbound served by net/http and to one served by the
// byte-level engine, both in front of the same two api sidecars (net/http
// inbounds): the status, the answer's body, which app saw the request
// (the route and split), how many times (the retries) and what it saw
// are the same; the byte-level engine decided on every request it serves
// and handed off the rest (chunked and large bodies, upgrades).
func TestOutboundEnginesDecideAlike(t *testing.T) {
	for _, variant := range []struct {
		name       string
		withHeader bool
	}{{"method and path routes", false}, {"a header route", true}} {
		t.Run(variant.name, func(t *testing.T) {
			ca := newCA(t)
			appA, appB := failingSeenApp(t), failingSeenApp(t)
			pa, _ := engineProxy(t, ca, proxy.HTTP1NetHTTP, appA, allowWeb())
			pb, _ := engineProxy(t, ca, proxy.HTTP1NetHTTP, appB, allowWeb())
			ea, eb := pa.Addr(proxy.KeyInbound), pb.Addr(proxy.KeyInbound)
			routes := outboundRoutes(variant.withHeader)
			oldW := outboundEngineWeb(t, ca, proxy.HTTP1NetHTTP, routes, ea, eb)
			newW := outboundEngineWeb(t, ca, proxy.HTTP1Bytes, routes, ea, eb)
			oldOut, newOut := oldW.Addr(proxy.KeyUpstream("api")).String(), newW.Addr(proxy.KeyUpstream("api")).String()
			decided := 0
			for _, tc := range outboundCorpus() {
				oldCode, oldBody := rawDoFinal(t, oldOut, tc.head, tc.body)
				oldA, oldB := appA.take(), appB.take()
				before := newW.BytesServed()
				newCode, newBody := rawDoFinal(t, newOut, tc.head, tc.body)
				newA, newB := appA.take(), appB.take()
				served := newW.BytesServed() - before
				if oldCode != newCode || oldBody != newBody && !tc.goRefuses {
					t.Errorf("%s: net/http answered %d %q, the byte-level engine %d %q", tc.name, oldCode, oldBody, newCode, newBody)
				}
				for _, side := range []struct {
					app      string
					old, new []*http.Request
				}{{"v1", oldA, newA}, {"v2", oldB, newB}} {
					if len(side.old) != len(side.new) {
						t.Errorf("%s: app %s saw %d requests through net/http, %d through the byte-level engine", tc.name, side.app, len(side.old), len(side.new))
						for _, r := range side.old {
							t.Logf("net/http: %s", seenView(r))
						}
						for _, r := range side.new {
							t.Logf("bytes: %s", seenView(r))
						}
						continue
					}
					for i := range side.old {
						if o, n := seenView(side.old[i]), seenView(side.new[i]); o != n {
							t.Errorf("%s: app %s saw through net/http:\n%s\nthrough the byte-level engine:\n%s", tc.name, side.app, o, n)
						}
					}
				}
				handedOff := strings.Contains(tc.head, "chunked") || strings.Contains(tc.head, "Upgrade") ||
					strings.Contains(tc.head, "Content-Length: 9000")
				if want := uint64(1); newCode != http.StatusBadRequest && !handedOff && served != want {
					t.Errorf("%s: the byte-level engine decided on %d requests, want 1 (handed to net/http?)", tc.name, served)
				}
				if handedOff && served != 0 {
					t.Errorf("%s: the byte-level engine decided on it; want it handed to net/http", tc.name)
				}
				decided += int(served)
			}
			t.Logf("the byte-level engine decided on %d of %d requests (the rest its parser refused, as the net/http path refuses them, or it handed off)", decided, len(outboundCorpus()))
		})
	}
}

// rawDoFinal is rawDo in plain TCP that reads past 1xx answers (100
// Continue) to the final one.
func rawDoFinal(t *testing.T, addr, head, body string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	return rawExchange(t, c, head, body)
}

// rawExchange writes head (lines ending "\n", Connection: close added)
// and body on c, closes c and returns the final answer's status and body.
func rawExchange(t *testing.T, c net.Conn, head, body string) (int, string) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	msg := strings.ReplaceAll(strings.TrimSuffix(head, "\n"), "\n", "\r\n") + "\r\nConnection: close\r\n\r\n" + body
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %q: %v", head, err)
		}
		if resp.StatusCode >= 200 {
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
	}
}
