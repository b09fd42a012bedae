package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
)

// gatewayJWTConfig is a gateway with one plain HTTP listener whose route
// goes to web (no endpoints: a request that passes authentication gets
// 503), requiring tokens of provider corp.
func gatewayJWTConfig(idp *jwttest.Issuer, t *testing.T, proto meshapi.GatewayProtocol) *meshapi.ProxyConfig {
	cfg := gatewayConfig(&meshapi.GatewayListener{Name: "web", BindAddress: "127.0.0.1", Protocol: proto, Routes: []*meshapi.GatewayRoute{httpRoute()}})
	cfg.Gateway.Jwt = &meshapi.JwtRequirement{Providers: []string{"corp"}}
	cfg.JwtProviders = []*meshapi.JwtProvider{{Name: "corp", Issuer: idp.Issuer, Audiences: []string{"shop"}, Jwks: idp.JWKS(t), Header: "Authorization"}}
	return cfg
}

// TestGatewayJWT: a gateway whose service has a jwt block answers 401
// with a challenge to a request without a valid token, before routing,
// and routes one with a valid token; a TCP listener on such a gateway is
// refused (it would let requests past the check).
func TestGatewayJWT(t *testing.T) {
	idp := jwttest.New(t, "https://idp.example.com", jose.ES256)
	other := jwttest.New(t, "https://idp.example.com", jose.ES256) // same issuer, keys not in the set
	p := New(Options{Log: io.Discard, DrainTimeout: time.Second})
	defer p.Close()
	if err := p.Apply(1, gatewayJWTConfig(idp, t, meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTP)); err != nil {
		t.Fatal(err)
	}
	url := "http://" + p.Addr(KeyGateway("web")).String() + "/"
	good := idp.Sign(t, idp.Claims("alice", "shop", nil))
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"not bearer", "Basic YWxpY2U6cHc=", http.StatusUnauthorized},
		{"garbage", "Bearer a.b.c", http.StatusUnauthorized},
		{"alg none", "Bearer " + jwttest.None(idp.Claims("alice", "shop", nil)), http.StatusUnauthorized},
		{"foreign key", "Bearer " + other.Sign(t, other.Claims("alice", "shop", nil)), http.StatusUnauthorized},
		{"expired", "Bearer " + idp.Sign(t, idp.Claims("alice", "shop", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), http.StatusUnauthorized},
		{"wrong audience", "Bearer " + idp.Sign(t, idp.Claims("alice", "admin", nil)), http.StatusUnauthorized},
		{"tampered", "Bearer " + jwttest.TamperSignature(good), http.StatusUnauthorized},
		// Past authentication, the route's service has no endpoints.
		{"valid", "Bearer " + good, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "shop.example.com"
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %q, want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	q := New(Options{Log: io.Discard})
	defer q.Close()
	err := q.Apply(1, gatewayJWTConfig(idp, t, meshapi.GatewayProtocol_GATEWAY_PROTOCOL_TCP))
	if err == nil || !strings.Contains(err.Error(), "requires end-user tokens") {
		t.Fatalf("a TCP listener on a gateway that requires tokens: Apply gave %v, want a refusal", err)
	}
}

// TestGatewayRateLimits: the gateway service's rate limits hold at the
// gateway: per end user (per_jwt_subject), and per client address, never
// by a header the client sends.
func TestGatewayRateLimits(t *testing.T) {
	idp := jwttest.New(t, "https://idp.example.com", jose.ES256)
	cfg := gatewayJWTConfig(idp, t, meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTP)
	cfg.Gateway.RateLimits = []*meshapi.RateLimit{{Name: "per-user", RequestsPerSecond: 0.001, Burst: 2, PerJwtSubject: "corp"}}
	p := New(Options{Log: io.Discard, DrainTimeout: time.Second})
	defer p.Close()
	if err := p.Apply(1, cfg); err != nil {
		t.Fatal(err)
	}
	url := "http://" + p.Addr(KeyGateway("web")).String() + "/"
	c := &http.Client{Timeout: 10 * time.Second}
	call := func(sub string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = "shop.example.com"
		req.Header.Set("Authorization", "Bearer "+idp.Sign(t, idp.Claims(sub, "shop", nil)))
		req.Header.Set("X-Forwarded-For", "198.51.100."+sub)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	// Past the limit, the route's service has no endpoints: 503.
	for i, tc := range []struct {
		sub  string
		want int
	}{
		{"alice", http.StatusServiceUnavailable}, {"alice", http.StatusServiceUnavailable},
		{"alice", http.StatusTooManyRequests}, {"bob", http.StatusServiceUnavailable},
	} {
		code, retry := call(tc.sub)
		if code != tc.want {
			t.Errorf("request %d of %s: %d, want %d", i+1, tc.sub, code, tc.want)
		}
		if code == http.StatusTooManyRequests && retry == "" {
			t.Errorf("a 429 without Retry-After")
		}
	}

	// A limit the sidecar cannot compile refuses the configuration.
	cfg = gatewayJWTConfig(idp, t, meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTP)
	cfg.Gateway.RateLimits = []*meshapi.RateLimit{{Name: "bad"}}
	q := New(Options{Log: io.Discard})
	defer q.Close()
	if err := q.Apply(1, cfg); err == nil || !strings.Contains(err.Error(), "must be positive") {
		t.Errorf("a gateway rate limit of 0/s: Apply gave %v, want a refusal", err)
	}
}

// TestGatewayRateLimitsShared: a gateway's rate limits apply before routing,
// per client address (per_source_ip) here, one bucket per address shared
// by the gateway's listeners: past the burst a client gets 429 with
// Retry-After, another address has its own bucket.
func TestGatewayRateLimitsShared(t *testing.T) {
	cfg := gatewayConfig(&meshapi.GatewayListener{Name: "a", BindAddress: "127.0.0.1", Routes: []*meshapi.GatewayRoute{httpRoute()}})
	second := &meshapi.GatewayListener{Name: "b", BindAddress: "127.0.0.1", Routes: []*meshapi.GatewayRoute{httpRoute()}}
	second.Routes[0].Upstream.Name = "gateway/b/web"
	cfg.Gateway.Listeners = append(cfg.Gateway.Listeners, second)
	cfg.Gateway.RateLimits = []*meshapi.RateLimit{{Name: "per-ip", RequestsPerSecond: 0.01, Burst: 3, PerSourceIp: true}}
	p := New(Options{Log: io.Discard, DrainTimeout: time.Second})
	defer p.Close()
	if err := p.Apply(1, cfg); err != nil {
		t.Fatal(err)
	}
	from := func(src string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	call := func(c *http.Client, listener string) (int, string) {
		resp, err := c.Get("http://" + p.Addr(KeyGateway(listener)).String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	one := from("127.0.0.1")
	// Past the limit, the route's service has no endpoints: 503.
	for i, l := range []string{"a", "b", "a", "b"} {
		code, retry := call(one, l)
		want := http.StatusServiceUnavailable
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if code != want {
			t.Errorf("request %d (listener %s) answered %d, want %d (burst 3 per address, across listeners)", i+1, l, code, want)
		}
		if code == http.StatusTooManyRequests && retry == "" {
			t.Error("429 without Retry-After")
		}
	}
	if code, _ := call(from("127.0.0.2"), "a"); code != http.StatusServiceUnavailable {
		t.Errorf("another address answered %d, want 503 (a bucket of its own)", code)
	}
	if top := p.Guard().Top(1); len(top) == 0 || top[0].Source != "127.0.0.1" || top[0].ByKind["rate_limited"] != 1 {
		t.Errorf("guard top = %+v, want 127.0.0.1 with one rate_limited signal", top)
	}
}
