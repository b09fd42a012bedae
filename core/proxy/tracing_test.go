package proxy_test

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
)

// collector is an OTLP/HTTP trace receiver on loopback: it decodes what
// the sidecars export. With hold set, it answers no export until the
// test ends.
type collector struct {
	addr  string
	mu    sync.Mutex
	spans []*tracepb.Span
	svc   map[string]string // span ID (hex) -> the resource's service.name
	got   chan struct{}     // a token per export
}

func newCollector(t testing.TB, hold bool) *collector {
	t.Helper()
	c := &collector{svc: map[string]string{}, got: make(chan struct{}, 1024)}
	release := make(chan struct{})
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		if hold {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		var req collectorpb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			name := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					name = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					c.spans = append(c.spans, sp)
					c.svc[hex.EncodeToString(sp.GetSpanId())] = name
				}
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Write(out)
		c.got <- struct{}{}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(release); srv.Close() })
	c.addr = ln.Addr().String()
	return c
}

// waitSpans waits (up to 10s) until the collector holds n spans.
func (c *collector) waitSpans(t testing.TB, n int) []*tracepb.Span {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.spans) >= n {
			out := append([]*tracepb.Span(nil), c.spans...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("the collector got %d spans in 10s, want %d", len(c.spans), n)
		}
	}
}

func tracingConfig(endpoint string, sampling float64, batch, queue uint32) *meshapi.Tracing {
	return &meshapi.Tracing{Endpoint: endpoint, Protocol: meshapi.TracingProtocol_TRACING_PROTOCOL_HTTP, Sampling: sampling,
		ServiceName: "svc", MaxBatch: batch, MaxQueue: queue, BatchTimeout: durationpb.New(20 * time.Millisecond)}
}

// traceMesh is newMesh with tracing on both sidecars, and an app that
// answers with the traceparent it received.
func traceMesh(t testing.TB, tr *meshapi.Tracing) *mesh {
	t.Helper()
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Traceparent", r.Header.Get("Traceparent"))
		io.WriteString(w, "ok")
	}), false)
	m := newMesh(t, app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	if tr != nil {
		sc := serverConfig(app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
		sc.Tracing = tr
		apply(t, m.server, 2, sc)
		cc := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, m.server.Addr(proxy.KeyInbound))
		cc.Tracing = tr
		apply(t, m.client, 2, cc)
		m.outbound = m.client.Addr(proxy.KeyUpstream("api")).String()
	}
	return m
}

func getWith(t testing.TB, url string, hdr http.Header) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestTracingSpans: one request through two sidecars makes a client span
// (web's outbound) and its child, a server span (api's inbound), with the
// identities on both; the app receives the server span's context; a
// caller's sampled parent is continued.
func TestTracingSpans(t *testing.T) {
	col := newCollector(t, false)
	m := traceMesh(t, tracingConfig(col.addr, 1, 16, 64))
	const tid, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp := getWith(t, "http://"+m.outbound+"/x", http.Header{"Traceparent": {"00-" + tid + "-" + parent + "-01"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	spans := col.waitSpans(t, 2)
	var client, server *tracepb.Span
	for _, sp := range spans {
		switch sp.GetKind() {
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = sp
		case tracepb.Span_SPAN_KIND_SERVER:
			server = sp
		}
	}
	if client == nil || server == nil || len(spans) != 2 {
		t.Fatalf("spans %v: want one client and one server span", spans)
	}
	if got := hex.EncodeToString(client.GetTraceId()); got != tid {
		t.Errorf("client span trace %s, want the caller's %s", got, tid)
	}
	if got := hex.EncodeToString(client.GetParentSpanId()); got != parent {
		t.Errorf("client span parent %s, want the caller's span %s", got, parent)
	}
	if string(server.GetParentSpanId()) != string(client.GetSpanId()) || string(server.GetTraceId()) != string(client.GetTraceId()) {
		t.Errorf("the server span is not the client span's child")
	}
	want := "00-" + tid + "-" + hex.EncodeToString(server.GetSpanId()) + "-01"
	if got := resp.Header.Get("X-Seen-Traceparent"); got != want {
		t.Errorf("the app got traceparent %q, want the server span's %q", got, want)
	}
	for _, tc := range []struct {
		sp             *tracepb.Span
		caller, callee string
	}{{client, webID, apiID}, {server, webID, apiID}} {
		attrs := map[string]string{}
		for _, a := range tc.sp.GetAttributes() {
			attrs[a.GetKey()] = a.GetValue().GetStringValue()
		}
		if attrs["weft.caller"] != tc.caller || attrs["weft.callee"] != tc.callee {
			t.Errorf("%s span: caller %q callee %q, want %q %q", tc.sp.GetKind(), attrs["weft.caller"], attrs["weft.callee"], tc.caller, tc.callee)
		}
	}
}

// TestTracingNeverBlocks: with a collector that never answers and a
// queue of one span, requests go on at once; the spans that do not fit
// are dropped and counted.
func TestTracingNeverBlocks(t *testing.T) {
	col := newCollector(t, true)
	m := traceMesh(t, tracingConfig(col.addr, 1, 1, 1))
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 50 {
		resp, err := c.Get("http://" + m.outbound + "/x")
		if err != nil {
			t.Fatalf("request %d with a stuck collector: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	rec := httptest.NewRecorder()
	m.client.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	line := ""
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, `weft_tracing_spans_total{outcome="dropped"}`) {
			line = l
		}
	}
	if line == "" || strings.HasSuffix(line, " 0") {
		t.Errorf("no span counted as dropped with a stuck collector: %q", line)
	}
}

// TestTracingOffPassesThrough: with tracing off (and after it is turned
// off) the sidecars change no trace header.
func TestTracingOffPassesThrough(t *testing.T) {
	col := newCollector(t, false)
	m := traceMesh(t, tracingConfig(col.addr, 1, 16, 64))
	sent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := getWith(t, "http://"+m.outbound+"/x", http.Header{"Traceparent": {sent}}).Header.Get("X-Seen-Traceparent"); got == sent {
		t.Fatalf("tracing on: the app got the caller's traceparent unchanged")
	}
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Traceparent", r.Header.Get("Traceparent"))
	}), false)
	apply(t, m.server, 3, serverConfig(app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb()))
	apply(t, m.client, 3, clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, m.server.Addr(proxy.KeyInbound)))
	if got := getWith(t, "http://"+m.outbound+"/x", http.Header{"Traceparent": {sent}}).Header.Get("X-Seen-Traceparent"); got != sent {
		t.Errorf("tracing off: the app got traceparent %q, want the caller's %q", got, sent)
	}
}

// TestTracingRejectsBadConfig: a configuration with a tracing block the
// sidecar cannot use is refused whole (NACKed).
func TestTracingRejectsBadConfig(t *testing.T) {
	m := traceMesh(t, nil)
	for _, tc := range []struct {
		name string
		tr   *meshapi.Tracing
		want string
	}{
		{"no port", tracingConfig("127.0.0.1", 1, 1, 1), "not host:port"},
		{"sampling above 1", tracingConfig("127.0.0.1:4318", 1.5, 1, 1), "fraction"},
		{"queue below batch", tracingConfig("127.0.0.1:4318", 1, 8, 4), "max_queue"},
		{"no batch", tracingConfig("127.0.0.1:4318", 1, 0, 4), "max_batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, m.server.Addr(proxy.KeyInbound))
			cc.Tracing = tc.tr
			err := m.client.Apply(9, cc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply = %v, want an error about %s", err, tc.want)
			}
		})
	}
}
