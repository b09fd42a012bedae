package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newDemo(upstreams map[string]string) *demo {
	return &demo{
		service:  "frontend",
		instance: "frontend-0",
		upstream: func(k string) string { return upstreams[k] },
		client:   &http.Client{Timeout: 5 * time.Second},
	}
}

func get(t *testing.T, h http.Handler, path, caller string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if caller != "" {
		req.Header.Set(callerHeader, caller)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: answer is not JSON: %v: %q", path, err, rec.Body.String())
	}
	return rec.Code, body
}

func TestHello(t *testing.T) {
	tests := []struct {
		name   string
		caller string
	}{
		{"called directly", ""},
		{"called through a sidecar", "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, newDemo(nil).routes(), "/", tt.caller)
			want := map[string]any{"service": "frontend", "instance": "frontend-0", "caller": tt.caller}
			if code != http.StatusOK || !reflect.DeepEqual(body, want) {
				t.Errorf("GET / = %d %v, want 200 %v", code, body, want)
			}
		})
	}
}

func TestPost(t *testing.T) {
	tests := []struct {
		name string
		body string
		want float64
	}{
		{"a small body", "order=42", 8},
		{"no body", "", 0},
		{"a body over 64 KiB, read up to 64 KiB", strings.Repeat("x", maxUpstreamBody+10), maxUpstreamBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			req.Header.Set(callerHeader, "api")
			rec := httptest.NewRecorder()
			newDemo(nil).routes().ServeHTTP(rec, req)
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("POST /: answer is not JSON: %v: %q", err, rec.Body.String())
			}
			want := map[string]any{"service": "frontend", "instance": "frontend-0", "caller": "api", "bytes": tt.want}
			if rec.Code != http.StatusOK || !reflect.DeepEqual(body, want) {
				t.Errorf("POST / = %d %v, want 200 %v", rec.Code, body, want)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCall(t *testing.T) {
	store := httptest.NewServer(newDemo(nil).routes()) // answers JSON
	defer store.Close()
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "weft: frontend may not call store (no intention; default deny)", http.StatusForbidden)
	}))
	defer denied.Close()
	up := map[string]string{
		"UPSTREAM_API":        store.URL,
		"UPSTREAM_STORE":      denied.URL,
		"UPSTREAM_USER_STORE": store.URL + "/",
		"UPSTREAM_GONE":       "http://" + closedAddr(t),
	}
	h := newDemo(up).routes()

	tests := []struct {
		path       string
		wantCode   int
		wantStatus float64
		check      func(t *testing.T, resp any)
	}{
		{"/call/api", http.StatusOK, 200, func(t *testing.T, resp any) {
			m, _ := resp.(map[string]any)
			if m["service"] != "frontend" {
				t.Errorf("response = %v, want the upstream's JSON", resp)
			}
		}},
		{"/call/user-store", http.StatusOK, 200, nil},
		{"/call/api/healthz", http.StatusOK, 200, func(t *testing.T, resp any) {
			if resp != "ok" {
				t.Errorf("response = %v, want the upstream's /healthz answer", resp)
			}
		}},
		{"/call/store", http.StatusBadGateway, 403, func(t *testing.T, resp any) {
			if resp != "weft: frontend may not call store (no intention; default deny)" {
				t.Errorf("response = %q, want the sidecar's refusal", resp)
			}
		}},
		{"/call/gone", http.StatusBadGateway, 0, nil},
		{"/call/nothing", http.StatusNotFound, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := get(t, h, tt.path, "web")
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d (%v)", code, tt.wantCode, body)
			}
			if body["status"] != tt.wantStatus {
				t.Errorf("status = %v, want %v", body["status"], tt.wantStatus)
			}
			if body["caller"] != "web" || body["service"] != "frontend" {
				t.Errorf("caller/service = %v/%v, want web/frontend", body["caller"], body["service"])
			}
			if tt.check != nil {
				tt.check(t, body["response"])
			}
			if msg, _ := body["error"].(string); tt.wantCode != http.StatusOK && msg == "" {
				t.Errorf("no error message in %v", body)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	h := newDemo(nil).routes()
	do := func(method, path, caller string) (int, string) {
		req := httptest.NewRequest(method, path, nil)
		if caller != "" {
			req.Header.Set(callerHeader, caller)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	// Each step runs on the same app, in order.
	for _, step := range []struct {
		method, path, caller string
		wantCode             int
		wantBody             string // prefix
	}{
		{"GET", "/healthz", "", 200, "ok\n"},
		{"POST", "/healthz/fail", "frontend", 403, "only a caller on the app's own host"},
		{"GET", "/healthz", "", 200, "ok\n"},
		{"POST", "/healthz/fail", "", 204, ""},
		{"GET", "/healthz", "", 500, "failing\n"},
		{"GET", "/", "", 200, "{"}, // the rest keeps serving
		{"POST", "/healthz/pass", "frontend", 403, "only"},
		{"GET", "/healthz", "", 500, "failing\n"},
		{"GET", "/healthz/fail", "", 405, ""},
		{"POST", "/healthz/pass", "", 204, ""},
		{"GET", "/healthz", "", 200, "ok\n"},
	} {
		code, body := do(step.method, step.path, step.caller)
		if code != step.wantCode || !strings.HasPrefix(body, step.wantBody) {
			t.Errorf("%s %s (caller %q) = %d %q, want %d %q", step.method, step.path, step.caller, code, body, step.wantCode, step.wantBody)
		}
	}
}

// TestCallPropagatesTraceContext: /call passes the trace context headers
// it received on to the upstream, and nothing else of them.
func TestCallPropagatesTraceContext(t *testing.T) {
	seen := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.WriteHeader(http.StatusOK)
	}))
	defer up.Close()
	h := newDemo(map[string]string{"UPSTREAM_API": up.URL}).routes()
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tt := range []struct {
		name string
		in   http.Header
	}{
		{"w3c", http.Header{"Traceparent": {tp}, "Tracestate": {"rojo=1"}}},
		{"b3 single", http.Header{"B3": {"4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"}}},
		{"b3 multi", http.Header{"X-B3-Traceid": {"4bf92f3577b34da6a3ce929d0e0e4736"}, "X-B3-Spanid": {"00f067aa0ba902b7"}, "X-B3-Sampled": {"1"}}},
		{"none", http.Header{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/call/api", nil)
			for k, v := range tt.in {
				req.Header[k] = v
			}
			req.Header.Set("X-Other", "not passed on")
			h.ServeHTTP(httptest.NewRecorder(), req)
			got := <-seen
			for k, v := range tt.in {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("upstream got %s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range traceHeaders {
				if _, sent := tt.in[k]; !sent && got[k] != nil {
					t.Errorf("upstream got %s = %q, which the caller never sent", k, got[k])
				}
			}
			if got.Get("X-Other") != "" {
				t.Error("an unrelated header was passed on")
			}
		})
	}
}

// TestRequestID: the app reports the request's X-Request-Id and passes it
// on to the upstream it calls.
func TestRequestID(t *testing.T) {
	store := newDemo(nil)
	store.service = "store"
	up := httptest.NewServer(store.routes())
	defer up.Close()
	h := newDemo(map[string]string{"UPSTREAM_STORE": up.URL}).routes()
	req := httptest.NewRequest(http.MethodGet, "/call/store", nil)
	req.Header.Set(requestIDHeader, "0b7c1a9e-5f39-4d61-9f8e-2d0a1c3b4e5f")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body struct {
		RequestID string `json:"request_id"`
		Response  struct {
			RequestID string `json:"request_id"`
		} `json:"response"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer %q: %v", rec.Body.String(), err)
	}
	if body.RequestID != "0b7c1a9e-5f39-4d61-9f8e-2d0a1c3b4e5f" || body.Response.RequestID != body.RequestID {
		t.Errorf("request IDs %q (frontend) and %q (store), want the caller's in both", body.RequestID, body.Response.RequestID)
	}
}
