package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
)

// waitLog is a proxy's log that a test can wait on: every write wakes
// the waiters, who look for the line they want (bounded by wait).
type waitLog struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newWaitLog() *waitLog { return &waitLog{wrote: make(chan struct{})} }

func (l *waitLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.wrote)
	l.wrote = make(chan struct{})
	return l.b.Write(p)
}

func (l *waitLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines are the log's lines so far.
func (l *waitLog) lines() []string {
	s := strings.TrimSuffix(l.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// accessRecord is an access line's fields, numbers as their text, and its
// words ("access inbound DENIED"; in JSON from msg, direction, outcome).
type accessRecord struct {
	words  string
	fields map[string]string
}

// parseRecord reads one line of either format; ok is false for a line
// that is not an access line (an event).
func parseRecord(t *testing.T, format proxy.AccessLogFormat, line string) (accessRecord, bool) {
	t.Helper()
	if format == proxy.AccessLogJSON {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatalf("a log line is not JSON: %q: %v", line, err)
		}
		if m["time"] == nil || m["level"] == nil || m["msg"] == nil {
			t.Fatalf("a log line has no time, level or msg: %q", line)
		}
		if m["msg"] != "access" {
			return accessRecord{}, false
		}
		r := accessRecord{fields: map[string]string{}}
		words := []string{"access"}
		for _, k := range []string{"direction", "outcome"} {
			if v, ok := m[k].(string); ok {
				words = append(words, v)
			}
		}
		r.words = strings.Join(words, " ")
		for k, v := range m {
			r.fields[k] = fmt.Sprint(v)
		}
		return r, true
	}
	// "2006/01/02 15:04:05.000000 access ..."
	date := regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} `)
	if !date.MatchString(line) {
		return accessRecord{}, false // an event of the text handler
	}
	words, fields, ok := proxy.ParseAccessLine(date.ReplaceAllString(line, ""))
	if !ok {
		t.Fatalf("an access line does not parse: %q", line)
	}
	r := accessRecord{words: strings.Join(words, " "), fields: map[string]string{}}
	for _, f := range fields {
		r.fields[f[0]] = f[1]
	}
	return r, true
}

// waitRecord waits for an access line with these words and fields.
func (l *waitLog) waitRecord(t *testing.T, format proxy.AccessLogFormat, words string, match map[string]string) accessRecord {
	t.Helper()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		wrote := l.wrote
		l.mu.Unlock()
		for _, line := range l.lines() {
			r, ok := parseRecord(t, format, line)
			if !ok || r.words != words {
				continue
			}
			all := true
			for k, v := range match {
				all = all && r.fields[k] == v
			}
			if all {
				return r
			}
		}
		select {
		case <-wrote:
		case <-timeout.C:
			t.Fatalf("no %q line with %v in the log:\n%s", words, match, l)
		}
	}
}

// logMesh is newMesh with both proxies logging (events and access lines)
// in format to waitLogs.
func logMesh(t *testing.T, format proxy.AccessLogFormat, app net.Addr, proto meshapi.Protocol, authz *meshapi.Authz, routes ...*meshapi.Route) (m *mesh, clientLog, serverLog *waitLog) {
	t.Helper()
	ca := newCA(t)
	start := func(svc string) (*proxy.Proxy, *waitLog) {
		lw := newWaitLog()
		var h slog.Handler = slog.NewTextHandler(lw, nil)
		if format == proxy.AccessLogJSON {
			h = slog.NewJSONHandler(lw, nil)
		}
		p := proxy.New(proxy.Options{Log: lw, Logger: slog.New(h), AccessLogFormat: format, DrainTimeout: 2 * time.Second})
		setCreds(t, p, ca, svc)
		t.Cleanup(func() {
			p.Close()
			if t.Failed() {
				t.Logf("log of proxy %s:\n%s", svc, lw)
			}
		})
		return p, lw
	}
	m = &mesh{ca: ca}
	m.server, serverLog = start("api")
	m.client, clientLog = start("web")
	apply(t, m.server, 1, serverConfig(app, proto, authz))
	cc := clientConfig(proto, apiID, m.server.Addr(proxy.KeyInbound))
	cc.Upstreams[0].Routes = routes
	apply(t, m.client, 1, cc)
	m.outbound = m.client.Addr(proxy.KeyUpstream("api")).String()
	return m, clientLog, serverLog
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestAccessLogFields: in both formats, both sidecars' lines of a call
// carry its request ID (generated, or the caller's), trace ID, caller,
// callee, route, upstream instance, method, authority, path, status,
// bytes, duration and retries; a denial carries its reason; and the app
// sees the same request ID.
func TestAccessLogFields(t *testing.T) {
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var flaky atomic.Int32
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Request-Id", strings.Join(r.Header.Values("X-Request-Id"), ","))
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/flaky" && flaky.Add(1) == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hello %s %s", r.URL.Path, body)
	}), false)
	authz := &meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "web", Permissions: []*meshapi.Permission{
		{Action: meshapi.Action_ACTION_DENY, Match: &meshapi.RouteMatch{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: "/admin"}}},
		{Action: meshapi.Action_ACTION_ALLOW},
	}}}}
	retryRoute := &meshapi.Route{
		Name:    "flaky",
		Matches: []*meshapi.RouteMatch{{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_EXACT, Value: "/flaky"}}},
		Retry:   &meshapi.RetryPolicy{Attempts: 3, RetryOn: []string{"5xx"}, BudgetMinPerSecond: 100},
	}
	for _, format := range []proxy.AccessLogFormat{proxy.AccessLogText, proxy.AccessLogJSON} {
		name := map[proxy.AccessLogFormat]string{proxy.AccessLogText: "text", proxy.AccessLogJSON: "json"}[format]
		t.Run(name, func(t *testing.T) {
			flaky.Store(0)
			m, clientLog, serverLog := logMesh(t, format, app, meshapi.Protocol_PROTOCOL_HTTP, authz, retryRoute)
			c := httpClient(false)
			defer c.CloseIdleConnections()
			endpoint := m.server.Addr(proxy.KeyInbound).String()
			do := func(method, path, body string, hdr http.Header) (*http.Response, string) {
				t.Helper()
				req, err := http.NewRequest(method, "http://"+m.outbound+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range hdr {
					req.Header[k] = v
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}

			t.Run("generated ID, trace ID, fields", func(t *testing.T) {
				resp, body := do("GET", "/hello", "", http.Header{"Traceparent": {traceparent}})
				id := resp.Header.Get("X-Seen-Request-Id")
				if resp.StatusCode != 200 || !uuidV4.MatchString(id) {
					t.Fatalf("got %d %q, the app saw request ID %q; want 200 and a UUID", resp.StatusCode, body, id)
				}
				out := clientLog.waitRecord(t, format, "access outbound", map[string]string{"request_id": id})
				in := serverLog.waitRecord(t, format, "access inbound", map[string]string{"request_id": id})
				want := map[string]string{
					"caller": webID, "dest": "api", "route": "-", "endpoint": endpoint, "method": "GET",
					"authority": m.outbound, "path": "/hello", "status": "200", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
					"bytes_in": "0", "bytes_out": fmt.Sprint(len(body)), "tries": "1", "retries": "0",
				}
				checkFields(t, "outbound", out, want, format)
				delete(want, "route")
				delete(want, "endpoint")
				delete(want, "tries")
				delete(want, "retries")
				checkFields(t, "inbound", in, want, format)
			})
			t.Run("caller's ID kept, bytes counted", func(t *testing.T) {
				resp, body := do("POST", "/hello", "abcdef", http.Header{"X-Request-Id": {"caller-chose-this:1"}})
				if got := resp.Header.Get("X-Seen-Request-Id"); resp.StatusCode != 200 || got != "caller-chose-this:1" {
					t.Fatalf("got %d %q, the app saw request ID %q", resp.StatusCode, body, got)
				}
				want := map[string]string{"method": "POST", "status": "200", "bytes_in": "6", "bytes_out": fmt.Sprint(len(body))}
				checkFields(t, "outbound", clientLog.waitRecord(t, format, "access outbound", map[string]string{"request_id": "caller-chose-this:1"}), want, format)
				checkFields(t, "inbound", serverLog.waitRecord(t, format, "access inbound", map[string]string{"request_id": "caller-chose-this:1"}), want, format)
			})
			t.Run("denied with its reason", func(t *testing.T) {
				resp, body := do("GET", "/admin/x", "", http.Header{"X-Request-Id": {"denied-1"}})
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("got %d %q, want 403", resp.StatusCode, body)
				}
				denied := serverLog.waitRecord(t, format, "access inbound DENIED", map[string]string{"request_id": "denied-1"})
				final := serverLog.waitRecord(t, format, "access inbound", map[string]string{"request_id": "denied-1"})
				for _, r := range []accessRecord{denied, final} {
					if why := r.fields["reason"]; !strings.Contains(why, "denies it") || !strings.Contains(why, webID) {
						t.Errorf("line %q: reason %q does not say the call was denied and to whom", r.words, why)
					}
				}
				checkFields(t, "inbound", final, map[string]string{"status": "403", "path": "/admin/x", "caller": webID}, format)
				checkFields(t, "outbound", clientLog.waitRecord(t, format, "access outbound", map[string]string{"request_id": "denied-1"}),
					map[string]string{"status": "403", "retries": "0"}, format)
			})
			t.Run("retried", func(t *testing.T) {
				resp, body := do("GET", "/flaky", "", nil)
				id := resp.Header.Get("X-Seen-Request-Id")
				if resp.StatusCode != 200 || id == "" {
					t.Fatalf("got %d %q (request ID %q), want 200 after a retry", resp.StatusCode, body, id)
				}
				checkFields(t, "outbound", clientLog.waitRecord(t, format, "access outbound", map[string]string{"request_id": id}),
					map[string]string{"route": "flaky", "status": "200", "tries": "2", "retries": "1"}, format)
				// Both tries reached the api sidecar with the same ID.
				serverLog.waitRecord(t, format, "access inbound", map[string]string{"request_id": id, "status": "503"})
				serverLog.waitRecord(t, format, "access inbound", map[string]string{"request_id": id, "status": "200"})
			})
			t.Run("every line parses", func(t *testing.T) {
				for _, l := range []*waitLog{clientLog, serverLog} {
					for _, line := range l.lines() {
						parseRecord(t, format, line) // fails the test on a line of another format
					}
				}
			})
		})
	}
}

func checkFields(t *testing.T, side string, r accessRecord, want map[string]string, format proxy.AccessLogFormat) {
	t.Helper()
	for k, v := range want {
		if got, ok := r.fields[k]; !ok || got != v {
			t.Errorf("%s line: %s = %q (present %v), want %q; line %v", side, k, got, ok, v, r.fields)
		}
	}
	dur := "dur"
	if format == proxy.AccessLogJSON {
		dur = "dur_ms"
	}
	if r.fields[dur] == "" {
		t.Errorf("%s line has no %s: %v", side, dur, r.fields)
	}
}

// TestAccessLogGRPC: a gRPC call gets a request ID too (a header like
// any other), the same in both sidecars' lines, with its gRPC status.
func TestAccessLogGRPC(t *testing.T) {
	m, clientLog, serverLog := logMesh(t, proxy.AccessLogJSON, grpcApp(t), meshapi.Protocol_PROTOCOL_GRPC, allowWeb())
	conn := dialGRPC(t, m.outbound)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	out := clientLog.waitRecord(t, proxy.AccessLogJSON, "access outbound", map[string]string{"path": "/grpc.health.v1.Health/Check"})
	id := out.fields["request_id"]
	if !uuidV4.MatchString(id) {
		t.Fatalf("outbound request_id %q, want a UUID", id)
	}
	in := serverLog.waitRecord(t, proxy.AccessLogJSON, "access inbound", map[string]string{"request_id": id})
	checkFields(t, "inbound", in, map[string]string{"grpc_status": "0", "status": "200"}, proxy.AccessLogJSON)
}
