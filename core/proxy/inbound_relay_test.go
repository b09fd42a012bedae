package proxy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// forwardedSpellings are forwarded headers as a gateway sets them and
// as a caller may spell them to pass for one: the case net/http's reader
// merges, the underscore spelling it does not, repeated and listed
// values, the headers no caller may relay, the hop-by-hop trick.
var forwardedSpellings = []string{
	"X-Forwarded-For: 192.0.2.1\nX-Forwarded-Proto: https",
	"X-Forwarded-For: 192.0.2.1",
	"x-forwarded-for: 192.0.2.1",
	"X-FORWARDED-PROTO: http",
	"X-Forwarded-For: 192.0.2.1, 198.51.100.7",
	"X-Forwarded-For: 192.0.2.1\nX-Forwarded-For: 198.51.100.7",
	"x-forwarded-for: 192.0.2.1\nX-Forwarded-For: 198.51.100.7\nX-FORWARDED-FOR: 203.0.113.9",
	"X-Forwarded-For:",
	"X_Forwarded_For: 10.0.0.1",
	"x_forwarded_proto: https",
	"X-Forwarded-For: 192.0.2.1\nX_Forwarded_For: 10.0.0.1",
	"X-Forwarded-Host: evil.example",
	"Forwarded: for=10.0.0.1;proto=https",
	"forwarded: for=10.0.0.1",
	"X-Forwarded-Port: 443",
	"Connection: X-Forwarded-For\nX-Forwarded-For: 192.0.2.1",
	"Connection: X-Forwarded-Proto, X-Forwarded-For\nX-Forwarded-Proto: https\nX-Forwarded-For: 192.0.2.1",
	"X-Forwarded-Client-Cert: By=forged\nX-Forwarded-For: 192.0.2.1",
	"X-Weft-Caller: forged\nX-Forwarded-For: 192.0.2.1",
}

// relayProxy starts an api proxy whose inbound serves HTTP/1.1 with
// engine and relays the forwarded headers of the callers forwarders.
func relayProxy(t *testing.T, ca *proxytest.CA, engine string, app *seenApp, forwarders []string) *proxy.Proxy {
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
	cfg := serverConfig(app.addr, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	cfg.Inbound.ForwardingCallers = forwarders
	apply(t, p, 1, cfg)
	return p
}

// TestInboundEnginesRelayAlike sends each of forwardedSpellings, raw,
// from the "web" identity to an inbound served by net/http and to one
// served by the byte-level engine, with web a gateway whose forwarded
// headers are relayed, and with web an ordinary caller (another identity
// is the gateway): the status, the answer and what the application saw
// are the same through both engines; the byte-level engine decided on
// every request itself; the app saw X-Forwarded-For and
// X-Forwarded-Proto from the gateway only, and never X-Forwarded-Host,
// Forwarded or an underscore spelling.
func TestInboundEnginesRelayAlike(t *testing.T) {
	ca := newCA(t)
	cfg := webTLS(t, ca, "http/1.1")
	webID := "spiffe://" + td + "/ns/default/svc/web"
	otherID := "spiffe://" + td + "/ns/default/svc/edge"
	for _, tc := range []struct {
		name       string
		forwarders []string
		relayed    bool
	}{
		{"web is a gateway", []string{webID}, true},
		{"web is not the gateway", []string{otherID}, false},
		{"no gateway", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldApp, newApp := startSeenApp(t, false), startSeenApp(t, false)
			oldP := relayProxy(t, ca, proxy.HTTP1NetHTTP, oldApp, tc.forwarders)
			newP := relayProxy(t, ca, proxy.HTTP1Bytes, newApp, tc.forwarders)
			oldIn, newIn := oldP.Addr(proxy.KeyInbound).String(), newP.Addr(proxy.KeyInbound).String()
			sawRelayed := 0
			for _, h := range forwardedSpellings {
				head := "GET /items HTTP/1.1\nHost: api\n" + h
				before := newP.BytesServed()
				oldCode, oldBody := rawDo(t, oldIn, cfg, head, "")
				newCode, newBody := rawDo(t, newIn, cfg, head, "")
				if oldCode != http.StatusOK || newCode != oldCode || newBody != oldBody {
					t.Errorf("%q: net/http answered %d %q, the byte-level engine %d %q; want both the app's 200", h, oldCode, oldBody, newCode, newBody)
				}
				if served := newP.BytesServed() - before; served != 1 {
					t.Errorf("%q: the byte-level engine decided on %d requests, want 1 (handed to net/http?)", h, served)
				}
				oldSeen, newSeen := oldApp.take(), newApp.take()
				if len(oldSeen) != 1 || len(newSeen) != 1 {
					t.Errorf("%q: the app saw %d requests through net/http, %d through the byte-level engine; want 1 and 1", h, len(oldSeen), len(newSeen))
					continue
				}
				if o, n := seenView(oldSeen[0]), seenView(newSeen[0]); o != n {
					t.Errorf("%q: the app saw through net/http:\n%s\nthrough the byte-level engine:\n%s", h, o, n)
				}
				for name := range newSeen[0].Header {
					switch {
					case name == "X-Forwarded-For" || name == "X-Forwarded-Proto":
						sawRelayed++
						if !tc.relayed {
							t.Errorf("%q: the app got %s from a caller that is not a gateway", h, name)
						}
					case strings.EqualFold(strings.ReplaceAll(name, "_", "-"), "X-Forwarded-For"),
						strings.EqualFold(strings.ReplaceAll(name, "_", "-"), "X-Forwarded-Proto"),
						strings.EqualFold(name, "X-Forwarded-Host"), strings.EqualFold(name, "Forwarded"):
						t.Errorf("%q: the app got %s", h, name)
					}
				}
				if got := newSeen[0].Header.Get("X-Weft-Caller"); got != webID {
					t.Errorf("%q: the app got X-Weft-Caller %q, want %q", h, got, webID)
				}
			}
			if tc.relayed && sawRelayed == 0 {
				t.Errorf("the app never got a gateway's X-Forwarded-For or X-Forwarded-Proto")
			}
			t.Logf("the app got a relayed forwarded header %d times over %d requests", sawRelayed, len(forwardedSpellings))
		})
	}
}
