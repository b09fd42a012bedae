package proxy_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// TestInboundForwardedHeaders: the inbound passes X-Forwarded-For and
// X-Forwarded-Proto on to its app from the callers its configuration
// names (the mesh's gateways), and from any other caller removes them and
// the other forwarded headers, in any spelling.
func TestInboundForwardedHeaders(t *testing.T) {
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(r.Header)
	}), false)
	m := newMesh(t, app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	leaf, err := m.ca.Leaf("default", "web", proxytest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A mesh caller of its own: web's certificate, straight to the inbound.
	c := &http.Client{Timeout: wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{leaf}, InsecureSkipVerify: true, // the server's identity is not what this test checks
	}}}
	defer c.CloseIdleConnections()
	url := "https://" + m.server.Addr(proxy.KeyInbound).String() + "/"
	sent := map[string]string{
		"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https", "X_forwarded_for": "192.0.2.8",
		"X-Forwarded-Host": "evil.example.com", "Forwarded": "for=192.0.2.9",
	}
	seen := func(t *testing.T) http.Header {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range sent {
			req.Header[k] = []string{v}
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var h http.Header
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return h
	}
	for _, tc := range []struct {
		name       string
		forwarders []string
		want       map[string]string // header -> value; the others of sent absent
	}{
		{"not a gateway", nil, nil},
		{"a gateway", []string{"spiffe://" + td + "/ns/default/svc/web"}, map[string]string{"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverConfig(app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
			cfg.Inbound.ForwardingCallers = tc.forwarders
			apply(t, m.server, 2+uint64(len(tc.forwarders)), cfg)
			h := seen(t)
			for k := range sent {
				if got, want := h.Get(k), tc.want[k]; got != want {
					t.Errorf("the app saw %s %q, want %q", k, got, want)
				}
			}
		})
	}
}
