package proxy_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
	"github.com/weftmesh/weft/core/proxy/proxytest"
	"github.com/weftmesh/weft/core/spiffe"
)

// gatewaySeenApp is a seenApp that answers 500 under /fail and 503 under
// /busy (both retried by the gateway upstream's routes).
func gatewaySeenApp(t *testing.T) *seenApp {
	t.Helper()
	a := &seenApp{}
	a.addr = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		r.Body = nil
		a.mu.Lock()
		a.reqs = append(a.reqs, r)
		a.mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/fail"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/busy"):
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, "app saw "+r.Method+" "+r.RequestURI)
	}), false)
	return a
}

// gatewayEngineAPI is an api sidecar (net/http inbound) in front of app
// that takes the gateway's calls, relays its forwarded headers, and
// denies /private (its own refusal, which the gateway scrubs).
func gatewayEngineAPI(t *testing.T, ca *proxytest.CA, app *seenApp) *proxy.Proxy {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second, HTTP1Engine: proxy.HTTP1NetHTTP})
	setCreds(t, p, ca, "api")
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log of an api proxy:\n%s", lb)
		}
	})
	cfg := serverConfig(app.addr, meshapi.Protocol_PROTOCOL_HTTP, &meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "public", Permissions: []*meshapi.Permission{
		{Action: meshapi.Action_ACTION_DENY, Match: &meshapi.RouteMatch{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: "/private"}}},
		{Action: meshapi.Action_ACTION_ALLOW},
	}}}})
	cfg.Inbound.ForwardingCallers = []string{spiffe.ID(td, "default", "public")}
	apply(t, p, 1, cfg)
	return p
}

// gatewayEngineConfig is gateway public's configuration: one HTTPS
// listener answering for api.example.com, *.api.example.com and
// shop.example.com, with a route by host and path to the shop subset
// (v2 only), a route by host to api's two endpoints under
// outboundRoutes' routes and a retry on 503 under /busy, and a rate
// limit on /limited (one request, then 429).
func gatewayEngineConfig(a, b net.Addr) *meshapi.ProxyConfig {
	gwID := spiffe.ID(td, "default", "public")
	ha, pa := splitAddr(a)
	hb, pb := splitAddr(b)
	eps := func() []*meshapi.Endpoint {
		return []*meshapi.Endpoint{{InstanceId: "api-1", Address: ha, Port: pa, Subsets: []string{"v1"}},
			{InstanceId: "api-2", Address: hb, Port: pb, Subsets: []string{"v2"}}}
	}
	one := func(subset string) []*meshapi.Split { return []*meshapi.Split{{Subset: subset, Weight: 1}} }
	prefix := func(p string) *meshapi.StringMatch {
		return &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: p}
	}
	apiRoutes := append([]*meshapi.Route{{Name: "busy", Splits: one("v1"), Matches: []*meshapi.RouteMatch{{Path: prefix("/busy")}},
		Retry: &meshapi.RetryPolicy{Attempts: 3, RetryOn: []string{"gateway-error"}, BudgetPercent: 100, BudgetMinPerSecond: 1000}}},
		outboundRoutes(false)...)
	routes := func(listener string) []*meshapi.GatewayRoute {
		return []*meshapi.GatewayRoute{
			{Name: "shop", Hosts: []string{"shop.example.com"}, Matches: []*meshapi.RouteMatch{{Path: prefix("/shop")}}, Upstream: &meshapi.Upstream{
				Name: "gateway/" + listener + "/shop", Service: "api", SpiffeId: apiID, Protocol: meshapi.Protocol_PROTOCOL_HTTP, Endpoints: eps(),
				Routes: []*meshapi.Route{{Name: "shop", Splits: one("v2")}},
			}},
			{Name: "api", Hosts: []string{"api.example.com", "*.api.example.com"}, Upstream: &meshapi.Upstream{
				Name: "gateway/" + listener + "/api", Service: "api", SpiffeId: apiID, Protocol: meshapi.Protocol_PROTOCOL_HTTP, Endpoints: eps(),
				Routes: apiRoutes,
			}},
		}
	}
	return &meshapi.ProxyConfig{
		InstanceId: "public-1", Service: "public", Namespace: "default", TrustDomain: td, SpiffeId: gwID,
		Gateway: &meshapi.Gateway{Name: "public",
			RateLimits: []*meshapi.RateLimit{{Name: "limited", RequestsPerSecond: 0.001, Burst: 1, Match: &meshapi.RouteMatch{Path: prefix("/limited")}}},
			Listeners: []*meshapi.GatewayListener{{
				Name: "https", BindAddress: "127.0.0.1", Protocol: meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS,
				Tls:    &meshapi.GatewayTLS{MeshCertificate: true, Sni: []string{"api.example.com", "*.api.example.com", "shop.example.com"}},
				Routes: routes("https"),
			}, {
				Name: "http", BindAddress: "127.0.0.1", Protocol: meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTP,
				Routes: routes("http"),
			}}},
	}
}

// gatewayEngine starts gateway public with engine and cfg.
func gatewayEngine(t *testing.T, ca *proxytest.CA, engine string, cfg *meshapi.ProxyConfig) *proxy.Proxy {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second, HTTP1Engine: engine})
	setCreds(t, p, ca, "public")
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log of the gateway (%s):\n%s", engine, lb)
		}
	})
	apply(t, p, 1, cfg)
	return p
}

// gatewayCorpus is engineCorpus's requests for host api.example.com (the
// zero-trust spellings, targets, spoofed identity and forwarded headers)
// and the gateway's own: routes by host and path, hosts in odd
// spellings and outside the listener's names, the client address
// headers in any spelling, retries on 500 and 503, the callee's own
// refusal, the rate limit, bodies.
func gatewayCorpus() []engineCase {
	var c []engineCase
	for _, tc := range outboundCorpus() {
		tc.head = strings.ReplaceAll(tc.head, "Host: api", "Host: api.example.com")
		tc.head = strings.ReplaceAll(tc.head, "http://api/", "https://api.example.com/")
		c = append(c, tc)
	}
	get := func(name, target, host string, extra ...string) engineCase {
		head := "GET " + target + " HTTP/1.1\nHost: " + host
		for _, e := range extra {
			head += "\n" + e
		}
		return engineCase{name: name, head: head}
	}
	c = append(c,
		get("shop route", "/shop/cart", "shop.example.com"),
		get("shop host, no route for the path", "/cart", "shop.example.com"),
		get("shop host in upper case with a dot", "/shop/cart", "SHOP.Example.COM."),
		get("shop host with a port", "/shop/cart", "shop.example.com:443"),
		get("a name under the wildcard", "/items", "eu.api.example.com"),
		get("two labels under the wildcard", "/items", "a.eu.api.example.com"),
		get("a host outside the listener's names", "/items", "other.example.com"),
		get("an IP literal host", "/items", "127.0.0.1"),
		get("an empty host", "/items", ""),
		get("a host too long", "/items", strings.Repeat("a", 300)+".example.com"),
		engineCase{name: "absolute form to the shop", head: "GET https://shop.example.com/shop/a HTTP/1.1\nHost: api.example.com"},
		get("retried 503", "/busy/x", "api.example.com"),
		get("the callee's refusal", "/private/x", "api.example.com"),
		get("the callee's refusal on the shop", "/shop/../private/x", "shop.example.com"),
		get("rate limited, first", "/limited", "api.example.com"),
		get("rate limited, second", "/limited", "api.example.com"),
		get("spoofed X-Real-IP", "/items", "api.example.com", "X-Real-IP: 10.9.9.9", "True-Client-IP: 10.9.9.9", "CF-Connecting-IP: 10.9.9.9"),
		get("spoofed with underscores", "/items", "api.example.com", "X_Real_IP: 10.9.9.9", "x_forwarded_proto: http", "X-FORWARDED-FOR: 10.1.1.1"),
		get("spoofed X-Forwarded-Port", "/items", "api.example.com", "X-Forwarded-Port: 1", "X-Forwarded-Prefix: /evil", "Forwarded: for=1.2.3.4;proto=http"),
		get("spoofed X-Envoy-External-Address", "/items", "api.example.com", "X-Envoy-External-Address: 10.2.2.2", "X-Original-Forwarded-For: 10.3.3.3"),
		engineCase{name: "PUT body on the shop", head: "PUT /shop/items/1 HTTP/1.1\nHost: shop.example.com\nContent-Length: 11", body: "hello world"},
		engineCase{name: "gRPC content type", head: "POST /pkg.Svc/Call HTTP/1.1\nHost: api.example.com\nContent-Type: application/grpc\nContent-Length: 0"},
	)
	return c
}

// TestGatewayEnginesAlike sends each request of gatewayCorpus, raw, over
// TLS and in plain HTTP, to gateway public served by net/http and to the same gateway
// served by the byte-level engine, both in front of the same two api
// sidecars: the status, the answer's body, which app saw the request
// (route and split), how many times (retries) and what it saw (the
// forwarded headers the gateway set, not the client's) are the same; the
// byte-level engine decided on every request it routes and handed off
// the rest. With a jwt requirement the byte-level engine hands every
// connection to net/http: tokens accepted and refused alike.
func TestGatewayEnginesAlike(t *testing.T) {
	ca := newCA(t)
	appA, appB := gatewaySeenApp(t), gatewaySeenApp(t)
	ea := gatewayEngineAPI(t, ca, appA).Addr(proxy.KeyInbound)
	eb := gatewayEngineAPI(t, ca, appB).Addr(proxy.KeyInbound)

	idp := jwttest.New(t, "https://idp.example.com", jose.ES256)
	good := idp.Sign(t, idp.Claims("alice", "shop", nil))
	withJWT := gatewayEngineConfig(ea, eb)
	withJWT.Gateway.Jwt = &meshapi.JwtRequirement{Providers: []string{"corp"}}
	withJWT.JwtProviders = []*meshapi.JwtProvider{{Name: "corp", Issuer: idp.Issuer, Audiences: []string{"shop"}, Jwks: idp.JWKS(t), Header: "Authorization"}}
	jwtCorpus := []engineCase{
		{name: "valid token", head: "GET /items HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer " + good},
		{name: "valid token on the shop with a body", head: "POST /shop/a HTTP/1.1\nHost: shop.example.com\nContent-Length: 3\nAuthorization: Bearer " + good, body: "abc"},
		{name: "no token", head: "GET /items HTTP/1.1\nHost: api.example.com"},
		{name: "wrong audience", head: "GET /items HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer " + idp.Sign(t, idp.Claims("alice", "admin", nil))},
		{name: "alg none", head: "GET /items HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer " + jwttest.None(idp.Claims("alice", "shop", nil))},
		{name: "valid token, spoofed forwarded", head: "GET /items HTTP/1.1\nHost: api.example.com\nX-Forwarded-For: 10.0.0.1\nAuthorization: Bearer " + good},
	}

	for _, variant := range []struct {
		name    string
		cfg     *meshapi.ProxyConfig
		corpus  []engineCase
		handsOn bool // the byte-level engine hands every connection off
	}{
		{"routes, retries, limits", gatewayEngineConfig(ea, eb), gatewayCorpus(), false},
		{"jwt", withJWT, jwtCorpus, true},
	} {
		t.Run(variant.name, func(t *testing.T) {
			oldG := gatewayEngine(t, ca, proxy.HTTP1NetHTTP, variant.cfg)
			newG := gatewayEngine(t, ca, proxy.HTTP1Bytes, variant.cfg)
			decided, sent := 0, 0
			for _, listener := range []string{"https", "http"} {
				oldAddr, newAddr := oldG.Addr(proxy.KeyGateway(listener)).String(), newG.Addr(proxy.KeyGateway(listener)).String()
				do, proto := rawDoTLS, "https"
				if listener == "http" {
					do, proto = rawDoFinal, "http"
				}
				for _, tc := range variant.corpus {
					tc.name = listener + ": " + tc.name
					sent++
					oldCode, oldBody := do(t, oldAddr, tc.head, tc.body)
					oldA, oldB := appA.take(), appB.take()
					before := newG.BytesServed()
					newCode, newBody := do(t, newAddr, tc.head, tc.body)
					newA, newB := appA.take(), appB.take()
					served := newG.BytesServed() - before
					oldBody, newBody = retryIn.ReplaceAllString(oldBody, "retry in <wait>"), retryIn.ReplaceAllString(newBody, "retry in <wait>")
					if bothRefuse[tc.name] {
						// Known: the byte-level parser refuses an empty Host
						// (400) that net/http's server takes, and the gateway
						// then refuses (421: not a listener's name). Both
						// refuse; no app sees it.
						if oldCode < 400 || oldCode >= 500 || newCode < 400 || newCode >= 500 {
							t.Errorf("%s: net/http answered %d %q, the byte-level engine %d %q; want both to refuse it", tc.name, oldCode, oldBody, newCode, newBody)
						}
					} else if oldCode != newCode || oldBody != newBody && !tc.goRefuses && !parserRefusal(oldCode, oldBody, newBody) {
						t.Errorf("%s: net/http answered %d %q, the byte-level engine %d %q", tc.name, oldCode, oldBody, newCode, newBody)
					}
					for _, side := range []struct {
						app      string
						old, new []*http.Request
					}{{"v1", oldA, newA}, {"v2", oldB, newB}} {
						if len(side.old) != len(side.new) {
							t.Errorf("%s: app %s saw %d requests through net/http, %d through the byte-level engine", tc.name, side.app, len(side.old), len(side.new))
							continue
						}
						for i := range side.old {
							if o, n := seenView(side.old[i]), seenView(side.new[i]); o != n {
								t.Errorf("%s: app %s saw through net/http:\n%s\nthrough the byte-level engine:\n%s", tc.name, side.app, o, n)
							}
							if f := side.new[i].Header.Get("X-Forwarded-For"); f != "127.0.0.1" {
								t.Errorf("%s: app %s saw X-Forwarded-For %q, want the client's address 127.0.0.1", tc.name, side.app, f)
							}
							if f := side.new[i].Header.Values("X-Forwarded-Proto"); len(f) != 1 || f[0] != proto {
								t.Errorf("%s: app %s saw X-Forwarded-Proto %q, want %s", tc.name, side.app, f, proto)
							}
						}
					}
					routed := len(newA)+len(newB) > 0 || newCode == http.StatusForbidden || newCode == http.StatusBadGateway
					handedOff := variant.handsOn || strings.Contains(tc.head, "chunked") || strings.Contains(tc.head, "Upgrade") ||
						strings.Contains(tc.head, "Content-Length: 9000") || strings.Contains(tc.head, "application/grpc")
					if routed && !handedOff && served != 1 {
						t.Errorf("%s: the byte-level engine decided on %d requests, want 1 (handed to net/http?)", tc.name, served)
					}
					if handedOff && served != 0 {
						t.Errorf("%s: the byte-level engine decided on it; want it handed to net/http", tc.name)
					}
					decided += int(served)
				}
			}
			t.Logf("the byte-level engine routed %d of %d requests (the gateway answered the rest itself, its parser refused them as net/http refuses them, or it handed them off)", decided, sent)
			if !variant.handsOn && decided == 0 {
				t.Errorf("the byte-level engine routed no request")
			}
		})
	}
}

// retryIn is a 429's wait, which differs by the time between two calls.
var retryIn = regexp.MustCompile(`retry in [0-9.hms]+`)

// bothRefuse names the requests of gatewayCorpus that both engines
// refuse, with different statuses.
var bothRefuse = map[string]bool{"https: an empty host": true, "http: an empty host": true}

// parserRefusal: both engines refused a malformed request with 400, in
// their own words (net/http's canon check says "weft gateway: bad
// request: ...", the byte-level parser what it found).
func parserRefusal(code int, oldBody, newBody string) bool {
	return code == http.StatusBadRequest && strings.HasPrefix(oldBody, "weft gateway: bad request: ") &&
		!strings.HasPrefix(newBody, "weft gateway: bad request: ")
}

// rawDoTLS is rawDoFinal over TLS to a gateway listener, with
// api.example.com as the server name and HTTP/1.1 by ALPN.
func rawDoTLS(t *testing.T, addr, head, body string) (int, string) {
	t.Helper()
	d := &net.Dialer{Timeout: wait}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "api.example.com", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return rawExchange(t, c, head, body)
}

// TestGatewayBytesCloseClosesIdle: closing a gateway closes the
// byte-level engine's idle keep-alive client connections at once, as
// net/http's Shutdown closes its own, rather than waiting out
// DrainTimeout; and a client's keep-alive connection carries its
// requests one after another.
func TestGatewayBytesCloseClosesIdle(t *testing.T) {
	ca := newCA(t)
	app := gatewaySeenApp(t)
	api := gatewayEngineAPI(t, ca, app).Addr(proxy.KeyInbound)
	p := proxy.New(proxy.Options{Log: &logBuf{}, DrainTimeout: time.Minute, HTTP1Engine: proxy.HTTP1Bytes})
	setCreds(t, p, ca, "public")
	apply(t, p, 1, gatewayEngineConfig(api, api))
	conns := 0
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "api.example.com", NextProtos: []string{"http/1.1"}},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns++
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", "https://"+p.Addr(proxy.KeyGateway("https")).String()+"/items", nil)
		req.Host = "api.example.com"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // read to its end: the connection stays open
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want the app's 200", resp.StatusCode)
		}
	}
	if p.BytesServed() != 3 || conns != 1 {
		t.Fatalf("the byte-level engine decided on %d requests over %d connections, want 3 over 1", p.BytesServed(), conns)
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
