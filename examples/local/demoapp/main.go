// Command weft-demo-app is the application of the local demo mesh
// (examples/local): one small HTTP server that plays the frontend, the api
// and the store, and shows who called it and what its upstreams answered.
//
// It listens on $HOST:$PORT, which the local adapter sets per instance, and
// answers
//
//	GET /             {"service", "instance", "caller", "traceparent",
//	                  "request_id"}: caller is the X-Weft-Caller header the
//	                  sidecar adds, "" if called directly; traceparent the W3C
//	                  trace context it received (a tracing sidecar writes its
//	                  span's there); request_id the X-Request-Id the first
//	                  sidecar on the way added (or the client's)
//	POST /            the same, with "bytes": how much of the body it read
//	                  (up to 64 KiB): a call that is not safe to repeat, to
//	                  try what a mesh does with one
//	GET /call/<name>[/<path>]
//	                  calls /<path> (default /) on the upstream whose URL is
//	                  in UPSTREAM_<NAME> (upper case, dashes as underscores),
//	                  so /call/api/call/store walks frontend -> api -> store,
//	                  passing on the trace context it received (traceparent,
//	                  tracestate, b3, X-B3-*) so that the hops are one trace,
//	                  and the request's X-Request-Id (as an app in a mesh
//	                  should, so that one ID follows the whole walk),
//	                  and reports
//	                  {"service", "caller", "request_id", "upstream", "status", "response"};
//	                  an upstream's non-2xx answer (a sidecar's 403 for a
//	                  denied call) comes back as a 502 with its body
//	GET /healthz      200 "ok", or 500 "failing" after POST /healthz/fail
//	GET /headers      the request's headers, as JSON (what the sidecar passed
//	                  on: forwarded JWT claims, identity headers)
//	POST /healthz/fail, POST /healthz/pass
//	                  make /healthz fail or pass from then on, while the
//	                  process keeps serving everything else: to try health
//	                  checks (a scheduler's, or a sidecar's). Only a caller
//	                  on the app's own host may: a request through a sidecar
//	                  (with X-Weft-Caller) is refused with 403
//
// The service name is $WEFT_SERVICE, or --name. It logs with log/slog on
// standard error (core/logging): --log-level and --log-format text|json,
// or $WEFT_LOG_LEVEL and $WEFT_LOG_FORMAT, which the local adapter passes
// on from the controller; a bad value exits with status 2. At debug it
// logs every request with its request ID.
//
// Build: go build -o bin/weft-demo-app ./examples/local/demoapp
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftmesh/weft/core/logging"
)

// callerHeader is set by the sidecar on every inbound request: the calling
// service's name.
const callerHeader = "X-Weft-Caller"

// requestIDHeader is the request ID a sidecar adds when a request has none.
const requestIDHeader = "X-Request-Id"

// maxUpstreamBody bounds what is read of an upstream's answer.
const maxUpstreamBody = 64 << 10

func main() {
	name := flag.String("name", os.Getenv("WEFT_SERVICE"), "service name to report (default $WEFT_SERVICE)")
	var lf logging.Flags
	lf.Register(flag.CommandLine)
	flag.Parse()
	log, err := lf.Logger(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-demo-app:", err)
		os.Exit(2)
	}
	slog.SetDefault(log)
	host, port := os.Getenv("HOST"), os.Getenv("PORT")
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "8080"
	}
	app := &demo{
		service:  *name,
		instance: os.Getenv("WEFT_INSTANCE"),
		upstream: os.Getenv,
		client:   &http.Client{Timeout: 5 * time.Second},
		log:      log,
	}
	srv := &http.Server{
		Addr:              net.JoinHostPort(host, port),
		Handler:           app.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("weft-demo-app listening", "service", app.service, "instance", app.instance, "addr", srv.Addr)
	select {
	case err := <-errc:
		log.Error("listening: is another process on that port? change `port` in the workloads file", "addr", srv.Addr, "err", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("shutting down", "err", err)
	}
}

type demo struct {
	service  string
	instance string
	upstream func(envName string) string // os.Getenv in main
	client   *http.Client
	log      *slog.Logger
	failing  atomic.Bool // /healthz answers 500
}

func (d *demo) routes() http.Handler {
	if d.log == nil {
		d.log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.hello)
	mux.HandleFunc("POST /{$}", d.post)
	mux.HandleFunc("GET /call/{name}", d.call)
	mux.HandleFunc("GET /call/{name}/{rest...}", d.call)
	mux.HandleFunc("GET /healthz", d.healthz)
	// The request's headers as the app got them (what its sidecar added,
	// removed or replaced: forwarded JWT claims, identity headers).
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, r.Header) })
	mux.HandleFunc("POST /healthz/fail", func(w http.ResponseWriter, r *http.Request) { d.setHealth(w, r, true) })
	mux.HandleFunc("POST /healthz/pass", func(w http.ResponseWriter, r *http.Request) { d.setHealth(w, r, false) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.log.Enabled(r.Context(), slog.LevelDebug) {
			d.log.Debug("request", "method", r.Method, "path", r.URL.Path, "caller", r.Header.Get(callerHeader), "request_id", r.Header.Get(requestIDHeader))
		}
		mux.ServeHTTP(w, r)
	})
}

func (d *demo) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if d.failing.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "failing\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// setHealth makes /healthz fail or pass; a call that came through a
// sidecar (another service) may not.
func (d *demo) setHealth(w http.ResponseWriter, r *http.Request, failing bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.Header.Get(callerHeader) != "" {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "only a caller on the app's own host may change its health, not one through the mesh\n")
		return
	}
	d.failing.Store(failing)
	if failing {
		d.log.Info("/healthz fails from now on (POST /healthz/pass to undo)")
	} else {
		d.log.Info("/healthz passes again")
	}
	w.WriteHeader(http.StatusNoContent)
}

type helloResponse struct {
	Service     string `json:"service"`
	Instance    string `json:"instance"`
	Caller      string `json:"caller"`
	Traceparent string `json:"traceparent,omitempty"`
	// RequestID is the request's X-Request-Id.
	RequestID string `json:"request_id,omitempty"`
}

func (d *demo) hello(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.helloOf(r))
}

func (d *demo) helloOf(r *http.Request) helloResponse {
	return helloResponse{Service: d.service, Instance: d.instance, Caller: r.Header.Get(callerHeader),
		Traceparent: r.Header.Get("Traceparent"), RequestID: r.Header.Get(requestIDHeader)}
}

// traceHeaders are the trace context headers an application passes on
// from the request it serves to the requests it makes for it, so that a
// tracing mesh (or a tracing library) sees one trace.
var traceHeaders = []string{"Traceparent", "Tracestate", "B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags"}

type postResponse struct {
	helloResponse
	Bytes int64 `json:"bytes"`
}

func (d *demo) post(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, maxUpstreamBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("reading the body: %v", err), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, postResponse{d.helloOf(r), n})
}

type callResponse struct {
	Service   string `json:"service"`
	Caller    string `json:"caller"`
	RequestID string `json:"request_id,omitempty"`
	Upstream  string `json:"upstream"`
	// Status is the upstream's HTTP status, 0 if it could not be reached.
	Status int `json:"status"`
	// Response is the upstream's JSON answer, or its body as text.
	Response any    `json:"response,omitempty"`
	Error    string `json:"error,omitempty"`
}

// upstreamEnv is the variable holding upstream name's URL.
func upstreamEnv(name string) string {
	return "UPSTREAM_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (d *demo) call(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	resp := callResponse{Service: d.service, Caller: r.Header.Get(callerHeader), RequestID: r.Header.Get(requestIDHeader), Upstream: name}
	env := upstreamEnv(name)
	url := d.upstream(env)
	if url == "" {
		resp.Error = fmt.Sprintf("no upstream %q: set %s to its URL (in the workloads file's env, e.g. http://${HOST}:<local_port>)", name, env)
		writeJSON(w, http.StatusNotFound, resp)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, strings.TrimSuffix(url, "/")+"/"+r.PathValue("rest"), nil)
	if err == nil && resp.RequestID != "" {
		req.Header.Set(requestIDHeader, resp.RequestID)
	}
	if err != nil {
		resp.Error = fmt.Sprintf("%s=%q is not a usable URL: %v", env, url, err)
		writeJSON(w, http.StatusInternalServerError, resp)
		return
	}
	for _, k := range traceHeaders {
		if v, ok := r.Header[k]; ok {
			req.Header[k] = v
		}
	}
	up, err := d.client.Do(req)
	if err != nil {
		resp.Error = fmt.Sprintf("calling %s: %v (is the sidecar running and does the policy declare upstream %q?)", url, err, name)
		writeJSON(w, http.StatusBadGateway, resp)
		return
	}
	defer up.Body.Close()
	body, err := io.ReadAll(io.LimitReader(up.Body, maxUpstreamBody))
	if err != nil {
		resp.Error = fmt.Sprintf("reading the answer of %s: %v", url, err)
	}
	resp.Status = up.StatusCode
	resp.Response = decodeBody(body)
	status := http.StatusOK
	if up.StatusCode < 200 || up.StatusCode > 299 {
		status = http.StatusBadGateway
		if resp.Error == "" {
			resp.Error = fmt.Sprintf("upstream %q answered %s", name, up.Status)
		}
	}
	writeJSON(w, status, resp)
}

// decodeBody returns body as JSON if it is JSON, else as trimmed text.
func decodeBody(body []byte) any {
	var v any
	if json.Valid(body) && json.Unmarshal(body, &v) == nil {
		return v
	}
	if s := string(bytes.TrimSpace(body)); s != "" {
		return s
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		slog.Warn("writing response", "err", err)
	}
}
