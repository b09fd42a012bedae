package proxy_test

import (
	"encoding/json"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
)

// detectorGoroutines counts the outlier-detection timer goroutines of
// this process.
func detectorGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "created by github.com/weftmesh/weft/core/proxy/balance.(*Detector).Update")
}

func stats(t *testing.T, p *proxy.Proxy) proxy.Stats {
	t.Helper()
	rec := httptest.NewRecorder()
	p.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	var st proxy.Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); rec.Code != 200 || err != nil {
		t.Fatalf("GET /stats: %d %v\n%s", rec.Code, err, rec.Body)
	}
	return st
}

// TestOutlierDetectorLifecycle: a refused connection ejects a TCP
// endpoint (shown in GET /stats); the upstream's timer goroutine runs
// while its configuration asks for outlier detection, ends when a new
// configuration replaces the upstream's handler, and when the proxy
// closes.
func TestOutlierDetectorLifecycle(t *testing.T) {
	before := detectorGoroutines()
	ca := newCA(t)
	server, _ := newProxy(t, ca, "api")
	apply(t, server, 1, serverConfig(echoApp(t, "A:"), meshapi.Protocol_PROTOCOL_TCP, allowWeb()))
	dead := listen(t)
	dead.Close() // a port that refuses connections
	client, _ := newProxy(t, ca, "web")
	cfg := clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, dead.Addr(), server.Addr(proxy.KeyInbound))
	cfg.Upstreams[0].OutlierDetection = &meshapi.OutlierDetection{
		ConsecutiveLocalFailures: 1, BaseEjectionTime: durationpb.New(time.Hour), MaxEjectedPercent: 50,
	}
	apply(t, client, 1, cfg)
	if n := detectorGoroutines() - before; n != 1 {
		t.Fatalf("%d detector goroutines, want 1", n)
	}
	out := client.Addr(proxy.KeyUpstream("api")).String()
	for i := range 2 { // round robin: the dead endpoint is dialed once
		c, line := dialLine(t, out)
		if got, err := line("x"); err != nil || got != "A:x" {
			t.Fatalf("connection %d: %q, %v", i, got, err)
		}
		c.Close() // so that the handler's drain below ends at once
	}
	st := stats(t, client)
	if len(st.Upstreams) != 1 || !st.Upstreams[0].OutlierDetection || len(st.Upstreams[0].Endpoints) != 2 {
		t.Fatalf("stats %+v", st)
	}
	e := st.Upstreams[0].Endpoints[0]
	if !e.Ejected || e.Reason != "consecutive_local_failures" || e.Until.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("dead endpoint %+v, want ejected for an hour after a refused connection", e)
	}
	if st.Upstreams[0].Endpoints[1].Ejected {
		t.Errorf("live endpoint ejected: %+v", st.Upstreams[0].Endpoints[1])
	}

	// Another protocol: a new handler; the old one drains (no connection
	// is open) and closes its detector. Polled: the drain runs in the
	// background.
	cfg.Upstreams[0].Protocol = meshapi.Protocol_PROTOCOL_HTTP2
	apply(t, client, 2, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for detectorGoroutines()-before != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d detector goroutines 10s after the handler was replaced, want 1", detectorGoroutines()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	client.Close()
	if n := detectorGoroutines() - before; n != 0 {
		t.Fatalf("%d detector goroutines after Close", n)
	}
}
