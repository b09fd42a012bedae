package proxy

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
)

func gatewayConfig(l *meshapi.GatewayListener) *meshapi.ProxyConfig {
	return &meshapi.ProxyConfig{
		InstanceId: "public-1", Service: "public", Namespace: "default", TrustDomain: "weft.local",
		SpiffeId: "spiffe://weft.local/ns/default/svc/public",
		Gateway:  &meshapi.Gateway{Name: "public", Listeners: []*meshapi.GatewayListener{l}},
	}
}

func httpRoute() *meshapi.GatewayRoute {
	return &meshapi.GatewayRoute{Name: "web", Upstream: &meshapi.Upstream{
		Name: "gateway/web/web", Service: "web", SpiffeId: "spiffe://weft.local/ns/default/svc/web", Protocol: meshapi.Protocol_PROTOCOL_HTTP,
	}}
}

// TestGatewayRefusedConfigs: a gateway configuration the proxy cannot
// serve is refused with what is wrong, and nothing is bound.
func TestGatewayRefusedConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		opts       Options
		cfg        *meshapi.ProxyConfig
	}{
		{"missing cert file", "reading tls cert_file", Options{}, gatewayConfig(&meshapi.GatewayListener{
			Name: "web", BindAddress: "127.0.0.1", Protocol: meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS,
			Tls: &meshapi.GatewayTLS{CertFile: "/nonexistent/a.crt", KeyFile: "/nonexistent/a.key"}, Routes: []*meshapi.GatewayRoute{httpRoute()},
		})},
		{"https without tls", "needs tls", Options{}, gatewayConfig(&meshapi.GatewayListener{
			Name: "web", BindAddress: "127.0.0.1", Protocol: meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS, Routes: []*meshapi.GatewayRoute{httpRoute()},
		})},
		{"no routes", "has no route", Options{}, gatewayConfig(&meshapi.GatewayListener{Name: "web", BindAddress: "127.0.0.1"})},
		{"another gateway", `runs as gateway "private"`, Options{Gateway: "private"}, gatewayConfig(&meshapi.GatewayListener{
			Name: "web", BindAddress: "127.0.0.1", Routes: []*meshapi.GatewayRoute{httpRoute()},
		})},
		{"a sidecar's config", "is a sidecar's", Options{Gateway: "public"}, &meshapi.ProxyConfig{InstanceId: "web-1", Service: "web"}},
		{"a bad rate limit", "must be positive", Options{}, withGatewayLimit(&meshapi.RateLimit{Name: "z", PerSourceIp: true})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Log = io.Discard
			p := New(tc.opts)
			defer p.Close()
			err := p.Apply(1, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want an error containing %q", err, tc.want)
			}
			if p.Addr(KeyGateway("web")) != nil {
				t.Error("a refused configuration bound a listener")
			}
		})
	}
}

func withGatewayLimit(rl *meshapi.RateLimit) *meshapi.ProxyConfig {
	cfg := gatewayConfig(&meshapi.GatewayListener{Name: "web", BindAddress: "127.0.0.1", Routes: []*meshapi.GatewayRoute{httpRoute()}})
	cfg.Gateway.RateLimits = []*meshapi.RateLimit{rl}
	return cfg
}

func TestHostIn(t *testing.T) {
	names := []string{"shop.example.com", "*.example.org"}
	for host, want := range map[string]bool{
		"shop.example.com": true, "a.example.org": true, "example.org": false, "a.b.example.org": false,
		"shop.example.co": false, ".example.org": false, "": false,
	} {
		if got := hostIn(host, names); got != want {
			t.Errorf("hostIn(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestRequestHost(t *testing.T) {
	for in, want := range map[string]string{"Shop.Example.COM:8443": "shop.example.com", "shop.example.com.": "shop.example.com", "[::1]:80": "::1"} {
		if got, why := requestHost(in); got != want || why != "" {
			t.Errorf("requestHost(%q) = %q, %q; want %q", in, got, why, want)
		}
	}
	if _, why := requestHost(strings.Repeat("a", 300)); why == "" {
		t.Error("a 300-byte host was taken")
	}
	// The refusal names the listener's routes: a request no route takes.
	g := &gatewayListener{p: New(Options{Log: io.Discard}), name: "web"}
	g.st.Store(&gatewayState{listener: "web"})
	rec := httptest.NewRecorder()
	g.serveHTTP(rec, httptest.NewRequest("GET", "http://nowhere.example.com/x", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "no route of listener web") {
		t.Errorf("no route: %d %q", rec.Code, rec.Body.String())
	}
}
