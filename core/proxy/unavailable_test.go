package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// healthReport is one call of proxy.HealthReporter.
type healthReport struct {
	healthy bool
	reason  string
}

// reports records what a proxy reports of its app's health.
type reports struct{ ch chan healthReport }

func newReports() *reports { return &reports{ch: make(chan healthReport, 256)} }

func (r *reports) ReportHealth(healthy bool, reason string) {
	select {
	case r.ch <- healthReport{healthy, reason}:
	default:
	}
}

// next waits (bounded) for a report with the given health, skipping
// others, and returns it.
func (r *reports) next(t *testing.T, healthy bool) healthReport {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case rep := <-r.ch:
			if rep.healthy == healthy {
				return rep
			}
		case <-timer.C:
			t.Fatalf("no report healthy=%v within %v", healthy, wait)
		}
	}
}

// newReportingProxy is newProxy with a health reporter.
func newReportingProxy(t *testing.T, ca *proxytest.CA, svc string, r proxy.HealthReporter) *proxy.Proxy {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second, Health: r})
	setCreds(t, p, ca, svc)
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log of proxy %s:\n%s", svc, lb)
		}
	})
	return p
}

// inboundClient calls a sidecar's inbound directly as "web", over mTLS
// (HTTP/1.1, or HTTP/2 with h2).
func inboundClient(t *testing.T, ca *proxytest.CA, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: webTLS(t, ca, "http/1.1")}
	if h2 {
		tr.TLSClientConfig = webTLS(t, ca, "h2")
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP2(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}
}

func grpcToInbound(t *testing.T, ca *proxytest.CA, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(webTLS(t, ca, "h2"))), grpc.WithNoProxy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestCalleeSignalsDeadApp: a sidecar whose app's port is closed answers
// 503 with X-Weft-Unavailable: app (gRPC: UNAVAILABLE and the header),
// and reports its app down at once.
func TestCalleeSignalsDeadApp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto meshapi.Protocol
		h2    bool
	}{
		{"http", meshapi.Protocol_PROTOCOL_HTTP, false},
		{"http2", meshapi.Protocol_PROTOCOL_HTTP2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newCA(t)
			rep := newReports()
			srv := newReportingProxy(t, ca, "api", rep)
			apply(t, srv, 1, serverConfig(deadAddr(t), tc.proto, allowWeb()))
			c := inboundClient(t, ca, tc.h2)
			for _, method := range []string{"GET", "POST", "DELETE"} {
				req, _ := http.NewRequest(method, "https://"+srv.Addr(proxy.KeyInbound).String()+"/x", strings.NewReader("body"))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 503 || resp.Header.Get(proxy.HeaderUnavailable) != proxy.ValueUnavailableApp {
					t.Errorf("%s: %d %s=%q %q; want 503 with the signal", method, resp.StatusCode, proxy.HeaderUnavailable, resp.Header.Get(proxy.HeaderUnavailable), b)
				}
			}
			if r := rep.next(t, false); !strings.Contains(r.reason, "connect") {
				t.Errorf("reported down with reason %q, want the refused connection", r.reason)
			}
		})
	}
	t.Run("grpc", func(t *testing.T) {
		ca := newCA(t)
		rep := newReports()
		srv := newReportingProxy(t, ca, "api", rep)
		apply(t, srv, 1, serverConfig(deadAddr(t), meshapi.Protocol_PROTOCOL_GRPC, allowWeb()))
		cc := grpcToInbound(t, ca, srv.Addr(proxy.KeyInbound).String())
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		// A trailers-only answer: its one HEADERS frame is the trailers.
		var md metadata.MD
		_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&md))
		if status.Code(err) != codes.Unavailable {
			t.Errorf("Check: %v, want Unavailable", err)
		}
		if got := md.Get(strings.ToLower(proxy.HeaderUnavailable)); len(got) != 1 || got[0] != proxy.ValueUnavailableApp {
			t.Errorf("header %s = %q, want %q", proxy.HeaderUnavailable, got, proxy.ValueUnavailableApp)
		}
		rep.next(t, false)
	})
}

// countingApp counts requests (health checks apart) and answers each
// with its name and the body it read. fail, while set, makes /healthz
// answer 500.
type countingApp struct {
	name  string
	calls atomic.Int64
	fail  atomic.Bool
	mu    sync.Mutex
	posts []string
}

func (a *countingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if a.fail.Load() {
			http.Error(w, "sick", 500)
			return
		}
		io.WriteString(w, "ok")
		return
	}
	a.calls.Add(1)
	b, _ := io.ReadAll(r.Body)
	if r.Method == "POST" {
		a.mu.Lock()
		a.posts = append(a.posts, string(b))
		a.mu.Unlock()
	}
	io.WriteString(w, a.name+":"+string(b))
}

// TestCallerRetriesSignalElsewhere: a caller with two endpoints, one
// whose app is dead behind a live sidecar, gets no failed GET and no
// failed POST: the signal sends each to the other endpoint, once.
func TestCallerRetriesSignalElsewhere(t *testing.T) {
	const n = 40
	for _, tc := range []struct {
		name  string
		proto meshapi.Protocol
		h2c   bool
	}{
		{"http", meshapi.Protocol_PROTOCOL_HTTP, false},
		{"http2", meshapi.Protocol_PROTOCOL_HTTP2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := &countingApp{name: "live"}
			s := newTwoServers(t, tc.proto, deadAddr(t), serveHTTP(t, live, true))
			apply(t, s.m.client, 2, clientConfig(tc.proto, apiID, s.a, s.b))
			c := httpClient(tc.h2c)
			defer c.CloseIdleConnections()
			failed := map[string]int{}
			for i := range n {
				for _, method := range []string{"GET", "POST"} {
					body := ""
					if method == "POST" {
						body = fmt.Sprintf("order-%d", i)
					}
					req, _ := http.NewRequest(method, "http://"+s.m.outbound+"/orders", strings.NewReader(body))
					if method == "GET" {
						req.Body = nil
					}
					resp, err := c.Do(req)
					if err != nil {
						t.Fatalf("%s %d: %v", method, i, err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(b) != "live:"+body {
						failed[method]++
						t.Errorf("%s %d: %d %q", method, i, resp.StatusCode, b)
					}
				}
			}
			t.Logf("%d GETs and %d POSTs through a caller with a dead app behind one of two endpoints: %d GETs and %d POSTs failed",
				n, n, failed["GET"], failed["POST"])
			if got := live.calls.Load(); got != 2*n {
				t.Errorf("the live app got %d requests, want %d (none twice)", got, 2*n)
			}
			live.mu.Lock()
			seen := map[string]bool{}
			for _, p := range live.posts {
				if seen[p] {
					t.Errorf("POST body %q arrived twice", p)
				}
				seen[p] = true
			}
			live.mu.Unlock()
			rec := httptest.NewRecorder()
			s.m.client.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if !strings.Contains(rec.Body.String(), `weft_unavailable_retries_total{peer="api"}`) {
				t.Errorf("no weft_unavailable_retries_total in the caller's metrics")
			}
		})
	}
	t.Run("grpc", func(t *testing.T) {
		s := newTwoServers(t, meshapi.Protocol_PROTOCOL_GRPC, deadAddr(t), grpcApp(t))
		apply(t, s.m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_GRPC, apiID, s.a, s.b))
		hc := healthpb.NewHealthClient(dialGRPC(t, s.m.outbound))
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		for i := range n {
			if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}
	})
	t.Run("one endpoint: the caller gets the 503", func(t *testing.T) {
		m := newMesh(t, deadAddr(t), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
		resp, body := get(t, httpClient(false), "http://"+m.outbound+"/", nil)
		if resp.StatusCode != 503 || !strings.Contains(body, proxy.HeaderUnavailable) {
			t.Errorf("%d %q; want 503 naming the signal", resp.StatusCode, body)
		}
	})
}

// TestAppCannotForgeSignal: an app's own 503 is passed through, tried
// once; an app that sends the signal's header, in any spelling, has it
// removed by its sidecar, and the caller does not retry.
func TestAppCannotForgeSignal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto meshapi.Protocol
		h2c   bool
		set   func(h http.Header)
	}{
		{"plain 503", meshapi.Protocol_PROTOCOL_HTTP, false, func(http.Header) {}},
		{"forged header", meshapi.Protocol_PROTOCOL_HTTP, false, func(h http.Header) { h.Set("X-Weft-Unavailable", "app") }},
		{"forged lower case", meshapi.Protocol_PROTOCOL_HTTP, false, func(h http.Header) { h["x-weft-unavailable"] = []string{"app"} }},
		{"forged upper case", meshapi.Protocol_PROTOCOL_HTTP, false, func(h http.Header) { h["X-WEFT-UNAVAILABLE"] = []string{"app"} }},
		{"forged twice", meshapi.Protocol_PROTOCOL_HTTP, false, func(h http.Header) { h["X-Weft-Unavailable"] = []string{"app", "app"} }},
		{"forged over http2", meshapi.Protocol_PROTOCOL_HTTP2, true, func(h http.Header) { h["x-weft-unavailable"] = []string{"app"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			forger := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tc.set(w.Header())
				w.WriteHeader(503)
				io.WriteString(w, "app says no")
			}), true)
			s := newTwoServers(t, tc.proto, forger, forger)
			apply(t, s.m.client, 2, clientConfig(tc.proto, apiID, s.a, s.b))
			c := httpClient(tc.h2c)
			defer c.CloseIdleConnections()
			for _, method := range []string{"GET", "POST"} {
				before := calls.Load()
				req, _ := http.NewRequest(method, "http://"+s.m.outbound+"/", strings.NewReader("x"))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 503 || string(b) != "app says no" {
					t.Errorf("%s: %d %q; want the app's 503", method, resp.StatusCode, b)
				}
				for k := range resp.Header {
					if strings.EqualFold(k, proxy.HeaderUnavailable) {
						t.Errorf("%s: the caller's app got header %s from the callee's app", method, k)
					}
				}
				if got := calls.Load() - before; got != 1 {
					t.Errorf("%s: the app was called %d times, want 1: the app's 503 was taken for the signal", method, got)
				}
			}
		})
	}
}

// TestHealthCheckTakesAppOut: an app whose health path answers 500 while
// its process lives is taken out within interval x unhealthy_threshold:
// the sidecar reports it down and answers the signal without calling it;
// it comes back when the path passes again. /health shows the state.
func TestHealthCheckTakesAppOut(t *testing.T) {
	const interval, threshold = 200 * time.Millisecond, 2
	for _, tc := range []struct {
		name  string
		proto meshapi.Protocol
		h2    bool
		check *meshapi.HealthCheck
	}{
		{"http", meshapi.Protocol_PROTOCOL_HTTP, false, &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/healthz", ExpectStatus: 200}},
		{"http over h2c", meshapi.Protocol_PROTOCOL_HTTP2, true, &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/healthz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &countingApp{name: "api"}
			ca := newCA(t)
			rep := newReports()
			srv := newReportingProxy(t, ca, "api", rep)
			cfg := serverConfig(serveHTTP(t, app, true), tc.proto, allowWeb())
			tc.check.Interval, tc.check.Timeout = durationpb.New(interval), durationpb.New(interval)
			tc.check.UnhealthyThreshold, tc.check.HealthyThreshold = threshold, 1
			cfg.HealthCheck = tc.check
			apply(t, srv, 1, cfg)
			rep.next(t, true) // the first probe passed
			c := inboundClient(t, ca, tc.h2)
			url := "https://" + srv.Addr(proxy.KeyInbound).String() + "/work"
			if resp, _ := doGet(t, c, url); resp.StatusCode != 200 {
				t.Fatalf("before the check fails: %d", resp.StatusCode)
			}

			failedAt := time.Now()
			app.fail.Store(true)
			down := rep.next(t, false)
			took := time.Since(failedAt)
			t.Logf("taken out %v after its health path began to fail (interval %v x unhealthy_threshold %d = %v); reason %q",
				took.Round(time.Millisecond), interval, threshold, interval*threshold, down.reason)
			// A probe runs every interval; the threshold-th failing one
			// is due at most interval x threshold after the failure began
			// (plus its own run time, and scheduling on a busy machine).
			if limit := interval*threshold + time.Second; took > limit {
				t.Errorf("taken out after %v, want within %v", took, limit)
			}
			if !strings.Contains(down.reason, "500") {
				t.Errorf("reason %q does not name the status", down.reason)
			}
			calls := app.calls.Load()
			resp, _ := doGet(t, c, url)
			if resp.StatusCode != 503 || resp.Header.Get(proxy.HeaderUnavailable) != proxy.ValueUnavailableApp {
				t.Errorf("while down: %d, %s=%q; want 503 with the signal", resp.StatusCode, proxy.HeaderUnavailable, resp.Header.Get(proxy.HeaderUnavailable))
			}
			if got := app.calls.Load(); got != calls {
				t.Errorf("the app was called while its check failed")
			}
			var view struct {
				Check   string `json:"check"`
				Healthy bool   `json:"healthy"`
				Reason  string `json:"reason"`
			}
			rec := httptest.NewRecorder()
			srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
			if err := json.Unmarshal(rec.Body.Bytes(), &view); err != nil || rec.Code != 503 || view.Healthy || view.Check != "HEALTH_CHECK_HTTP" || !strings.Contains(view.Reason, "500") {
				t.Errorf("/health while down: %d %s (%v)", rec.Code, rec.Body, err)
			}

			app.fail.Store(false)
			rep.next(t, true)
			if resp, _ := doGet(t, c, url); resp.StatusCode != 200 {
				t.Errorf("after the check passes again: %d", resp.StatusCode)
			}
			rec = httptest.NewRecorder()
			srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
			if rec.Code != 200 {
				t.Errorf("/health once up again: %d %s", rec.Code, rec.Body)
			}
		})
	}
	t.Run("grpc", func(t *testing.T) {
		ln := listen(t)
		gs := grpc.NewServer()
		hs := health.NewServer()
		healthpb.RegisterHealthServer(gs, hs)
		go gs.Serve(ln)
		t.Cleanup(gs.Stop)
		ca := newCA(t)
		rep := newReports()
		srv := newReportingProxy(t, ca, "api", rep)
		cfg := serverConfig(ln.Addr(), meshapi.Protocol_PROTOCOL_GRPC, allowWeb())
		cfg.HealthCheck = &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_GRPC, GrpcService: "shop.Cart",
			Interval: durationpb.New(interval), Timeout: durationpb.New(interval), UnhealthyThreshold: threshold, HealthyThreshold: 1}
		hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
		apply(t, srv, 1, cfg)
		rep.next(t, true)
		hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_NOT_SERVING)
		if r := rep.next(t, false); !strings.Contains(r.reason, "NOT_SERVING") {
			t.Errorf("reason %q does not say NOT_SERVING", r.reason)
		}
		cc := grpcToInbound(t, ca, srv.Addr(proxy.KeyInbound).String())
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		var md metadata.MD
		_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&md))
		if status.Code(err) != codes.Unavailable || len(md.Get("x-weft-unavailable")) != 1 {
			t.Errorf("while down: %v, header %v; want Unavailable with the signal", err, md)
		}
		hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
		rep.next(t, true)
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("once up again: %v", err)
		}
	})
}

func doGet(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestResetBeforeResponse: an app that closes the connection before any
// byte of a response gets the signal sent for a request safe to repeat
// (GET), which may have run and may run again; a POST, which the app may
// have acted on, gets 502 and no signal.
func TestResetBeforeResponse(t *testing.T) {
	rude := serveConns(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n') // the request line, then nothing
	})
	ca := newCA(t)
	srv := newReportingProxy(t, ca, "api", nil)
	apply(t, srv, 1, serverConfig(rude, meshapi.Protocol_PROTOCOL_HTTP, allowWeb()))
	c := inboundClient(t, ca, false)
	for _, tc := range []struct {
		method string
		code   int
		signal bool
	}{
		{"GET", 503, true},
		{"HEAD", 503, true},
		{"POST", 502, false},
		{"DELETE", 502, false},
	} {
		req, _ := http.NewRequest(tc.method, "https://"+srv.Addr(proxy.KeyInbound).String()+"/x", nil)
		if tc.method == "POST" {
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader("b")), 1
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get(proxy.HeaderUnavailable) == proxy.ValueUnavailableApp; resp.StatusCode != tc.code || got != tc.signal {
			t.Errorf("%s: %d signal=%v, want %d signal=%v", tc.method, resp.StatusCode, got, tc.code, tc.signal)
		}
	}
}

// TestRefusalReportsWithoutCheck: with no health check, a refused
// connection reports the app down; once the app accepts connections again
// it is reported up, without any request (the controller may have taken
// the instance out on the first report, so none would come); a reporter
// set later (as NewClient sets the controller client) hears the last
// state at once.
func TestRefusalReportsWithoutCheck(t *testing.T) {
	ca := newCA(t)
	srv := newReportingProxy(t, ca, "api", nil)
	dead := freedAddr(t) // the app listens on it later
	apply(t, srv, 1, serverConfig(dead, meshapi.Protocol_PROTOCOL_HTTP, allowWeb()))
	c := inboundClient(t, ca, false)
	url := "https://" + srv.Addr(proxy.KeyInbound).String() + "/x"
	if resp, _ := doGet(t, c, url); resp.StatusCode != 503 {
		t.Fatalf("dead app: %d, want 503", resp.StatusCode)
	}
	rep := newReports()
	srv.SetHealthReporter(rep)
	if r := rep.next(t, false); !strings.Contains(r.reason, "refused") {
		t.Errorf("replayed report %q, want the refusal", r.reason)
	}
	// The app starts on its port; no request comes.
	ln, err := net.Listen("tcp", dead.String())
	if err != nil {
		t.Fatalf("listening again on %s: %v", dead, err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "back") })}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	if r := rep.next(t, true); !strings.Contains(r.reason, "accepts connections") {
		t.Errorf("reported up with %q, want the probe's reason", r.reason)
	}
	if resp, body := doGet(t, c, url); resp.StatusCode != 200 || body != "back" {
		t.Errorf("app back: %d %q", resp.StatusCode, body)
	}
	rec := httptest.NewRecorder()
	srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"check": ""`) {
		t.Errorf("/health without a check: %d %s", rec.Code, rec.Body)
	}
}

// TestHealthCheckFollowsConfig: a configuration that drops the check
// stops it, and the app takes requests again at once.
func TestHealthCheckFollowsConfig(t *testing.T) {
	app := &countingApp{name: "api"}
	app.fail.Store(true)
	ca := newCA(t)
	rep := newReports()
	srv := newReportingProxy(t, ca, "api", rep)
	cfg := serverConfig(serveHTTP(t, app, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	cfg.HealthCheck = &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "/healthz",
		Interval: durationpb.New(50 * time.Millisecond), Timeout: durationpb.New(50 * time.Millisecond), UnhealthyThreshold: 1, HealthyThreshold: 1}
	apply(t, srv, 1, cfg)
	rep.next(t, false)
	c := inboundClient(t, ca, false)
	url := "https://" + srv.Addr(proxy.KeyInbound).String() + "/x"
	if resp, _ := doGet(t, c, url); resp.StatusCode != 503 {
		t.Errorf("with the check failing: %d, want 503", resp.StatusCode)
	}
	cfg.HealthCheck = nil
	apply(t, srv, 2, cfg)
	if r := rep.next(t, true); !strings.Contains(r.reason, "no health check") {
		t.Errorf("report %q, want the check's removal", r.reason)
	}
	if resp, _ := doGet(t, c, url); resp.StatusCode != 200 {
		t.Errorf("without a check: %d, want 200", resp.StatusCode)
	}
	bad := serverConfig(serveHTTP(t, app, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	bad.HealthCheck = &meshapi.HealthCheck{Kind: meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, HttpPath: "healthz"}
	if err := srv.Apply(3, bad); err == nil || !strings.Contains(err.Error(), "health_check") {
		t.Errorf("a check with a relative path: %v, want the version refused", err)
	}
}

// TestSignalLargeBodyNotReplayed: a POST whose body is past what is kept
// for a replay (64 KiB) is not sent again: the caller gets the 503 with
// the signal, and the live app never sees half a request.
func TestSignalLargeBodyNotReplayed(t *testing.T) {
	live := &countingApp{name: "live"}
	s := newTwoServers(t, meshapi.Protocol_PROTOCOL_HTTP, deadAddr(t), serveHTTP(t, live, false))
	// The dead app's endpoint and the live one: round robin sends a large
	// POST to the dead one.
	apply(t, s.m.client, 2, clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, s.a, s.b))
	c := httpClient(false)
	defer c.CloseIdleConnections()
	big := strings.Repeat("x", 64<<10+1)
	sawSignal := false
	for i := range 4 { // round robin: at least one of them meets the dead app first
		resp, err := c.Post("http://"+s.m.outbound+"/", "text/plain", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == 200 && string(b) == "live:"+big:
		case resp.StatusCode == 503 && resp.Header.Get(proxy.HeaderUnavailable) == proxy.ValueUnavailableApp:
			sawSignal = true
		default:
			t.Errorf("POST %d: %d %.80q", i, resp.StatusCode, b)
		}
	}
	if !sawSignal {
		t.Error("no large POST met the dead app's signal: round robin should have sent one there")
	}
	live.mu.Lock()
	defer live.mu.Unlock()
	for _, p := range live.posts {
		if p != big {
			t.Errorf("the live app got a body of %d bytes, want %d", len(p), len(big))
		}
	}
}
