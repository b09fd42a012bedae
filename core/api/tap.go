package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/core/meshserver"
)

// GET /v1/tap streams live requests of one service, as the sidecars see
// them, in newline-delimited JSON: one TapEvent a line. Query parameters:
//
//	service   the service to tap, "svc" or "ns/svc" (required)
//	from      only requests from this calling service ("svc" or "ns/svc")
//	to        only requests to this upstream service
//	direction inbound, outbound, or both (the default; "from" alone means
//	          inbound, "to" alone outbound)
//	path      only canonical paths with this prefix (starts with /)
//	method    only this method
//	max_rps   events a second per sidecar (default DefaultTapRPS, at most
//	          meshserver's core/proxy.MaxTapRPS)
//	duration  how long (Go duration; default DefaultTapDuration, at most
//	          meshserver.MaxTapDuration)
//
// The first lines are "joined" events as sidecars start the tap, then
// "request" events, and the last an "end" event with the count of events
// dropped on the way (over a rate, or a slow reader). A controller runs at
// most meshserver.MaxTapSessions taps at once; more get 429.

// Tap defaults and bounds of the admin API.
const (
	DefaultTapRPS      = 100
	MaxTapRPS          = 1000
	DefaultTapDuration = time.Minute
	maxTapName         = 253
	maxTapPath         = 1024
)

// TapEvent is one line of GET /v1/tap.
type TapEvent struct {
	// Type is "joined" (a sidecar started the tap: Instance), "request"
	// (a request ended or was refused) or "end" (the tap ended: Dropped,
	// Reason).
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Instance is the sidecar's instance that saw the request, Service
	// its service.
	Instance  string `json:"instance,omitempty"`
	Service   string `json:"service,omitempty"`
	Direction string `json:"direction,omitempty"` // inbound, outbound
	// Caller is the caller's SPIFFE ID (inbound: the one its certificate
	// proved), Callee the service called.
	Caller   string `json:"caller,omitempty"`
	Callee   string `json:"callee,omitempty"`
	Upstream string `json:"upstream_instance,omitempty"` // outbound: host:port that answered
	Route    string `json:"route,omitempty"`
	Method   string `json:"method,omitempty"`
	// Authority is the request's Host; Path its canonical path.
	Authority  string  `json:"authority,omitempty"`
	Path       string  `json:"path,omitempty"`
	Status     int     `json:"status,omitempty"` // HTTP status; 0: none
	GRPCStatus string  `json:"grpc_status,omitempty"`
	LatencyMs  float64 `json:"latency_ms,omitempty"`
	// RequestBytes is -1 when the request's length was not declared.
	RequestBytes  int64 `json:"request_bytes,omitempty"`
	ResponseBytes int64 `json:"response_bytes,omitempty"`
	Tries         int   `json:"tries,omitempty"`
	// Denied is why authorization refused the request (the sidecar's
	// access log says the same).
	Denied string `json:"denied,omitempty"`
	// End: events dropped, and why the tap ended.
	Dropped uint64 `json:"dropped,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Tapper starts tap sessions (core/meshserver.Server implements it).
type Tapper interface {
	StartTap(q meshserver.TapQuery) (*meshserver.TapSession, error)
}

// TapSessions is GET /v1/tap/sessions: the tap sessions open on this
// controller.
type TapSessions struct {
	// Open counts every session open here: the taps of this controller's
	// admin API and the legs it runs for peer replicas' taps.
	Open int `json:"open"`
	// Started counts the taps of this controller's admin API (each with a
	// leg on every peer replica).
	Started int `json:"started"`
	// ForPeers are the legs this replica runs for its peers' taps.
	ForPeers []TapLeg `json:"for_peers"`
}

// TapLeg is a session a replica runs, with its own sidecars, for the tap
// of another replica (core/relay).
type TapLeg struct {
	Origin  string    `json:"origin"` // the raft address of the replica whose admin API serves the tap
	ID      uint64    `json:"id"`     // the tap's ID there
	Service string    `json:"service"`
	End     time.Time `json:"end"`
}

// TapReporter, when the Tapper implements it, answers GET
// /v1/tap/sessions (core/relay.Taps does).
type TapReporter interface {
	TapReport() TapSessions
}

// TapQueryOf reads the query parameters of GET /v1/tap.
func TapQueryOf(v url.Values) (meshserver.TapQuery, error) {
	var q meshserver.TapQuery
	for k, vs := range v {
		switch k {
		case "service", "from", "to", "direction", "path", "method", "max_rps", "duration":
		default:
			return q, fmt.Errorf("unknown parameter %q; the tap takes service, from, to, direction, path, method, max_rps, duration", k)
		}
		if len(vs) > 1 {
			return q, fmt.Errorf("parameter %q given %d times; give it once", k, len(vs))
		}
	}
	var err error
	if q.Namespace, q.Service, err = tapName("service", v.Get("service"), true); err != nil {
		return q, err
	}
	if q.FromNamespace, q.From, err = tapName("from", v.Get("from"), false); err != nil {
		return q, err
	}
	if _, q.To, err = tapName("to", v.Get("to"), false); err != nil {
		return q, err
	}
	switch d := v.Get("direction"); d {
	case "inbound":
		q.Inbound = true
	case "outbound":
		q.Outbound = true
	case "", "both":
		q.Inbound, q.Outbound = q.To == "" || q.From != "", q.From == "" || q.To != ""
	default:
		return q, fmt.Errorf("direction %q: want inbound, outbound or both", d)
	}
	if q.From != "" && !q.Inbound {
		return q, errors.New("from limits inbound requests: drop direction=outbound, or use to")
	}
	if q.To != "" && !q.Outbound {
		return q, errors.New("to limits outbound requests: drop direction=inbound, or use from")
	}
	if p := v.Get("path"); p != "" {
		if len(p) > maxTapPath || p[0] != '/' || strings.ContainsAny(p, "?#") || !printable(p) {
			return q, fmt.Errorf("path %q: want a path prefix that begins with /, at most %d printable bytes, without ? or #", clip(p), maxTapPath)
		}
		q.PathPrefix = p
	}
	if m := v.Get("method"); m != "" {
		if len(m) > 32 || !token(m) {
			return q, fmt.Errorf("method %q: want an HTTP method such as GET", clip(m))
		}
		q.Method = m
	}
	q.MaxRPS = DefaultTapRPS
	if s := v.Get("max_rps"); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 || n > MaxTapRPS {
			return q, fmt.Errorf("max_rps %q: want a whole number from 1 to %d", clip(s), MaxTapRPS)
		}
		q.MaxRPS = uint32(n)
	}
	q.Duration = DefaultTapDuration
	if s := v.Get("duration"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > meshserver.MaxTapDuration {
			return q, fmt.Errorf("duration %q: want a Go duration (30s, 5m) up to %s", clip(s), meshserver.MaxTapDuration)
		}
		q.Duration = d
	}
	return q, nil
}

// tapName reads "svc" or "ns/svc".
func tapName(param, s string, required bool) (ns, svc string, err error) {
	if s == "" {
		if required {
			return "", "", fmt.Errorf("no %s: name the service to tap, as svc or namespace/svc", param)
		}
		return "", "", nil
	}
	ns, svc, ok := strings.Cut(s, "/")
	if !ok {
		ns, svc = "", s
	}
	if !validName(svc) || (ok && !validName(ns)) {
		return "", "", fmt.Errorf("%s %q: want a service name (letters, digits, '-', '_', '.'; at most %d) or namespace/service", param, clip(s), maxTapName)
	}
	return ns, svc, nil
}

func validName(s string) bool {
	if s == "" || len(s) > maxTapName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// clip shortens what a client sent for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// serveTapSessions is GET /v1/tap/sessions.
func (h *handler) serveTapSessions(w http.ResponseWriter, r *http.Request) {
	rep, ok := h.o.Tap.(TapReporter)
	if !ok {
		http.Error(w, "this controller does not list its tap sessions", http.StatusNotImplemented)
		return
	}
	writeJSON(w, rep.TapReport())
}

// serveTap is GET /v1/tap.
func (h *handler) serveTap(w http.ResponseWriter, r *http.Request) {
	if h.o.Tap == nil {
		http.Error(w, "this controller does not serve tap", http.StatusNotImplemented)
		return
	}
	q, err := TapQueryOf(r.URL.Query())
	if err != nil {
		http.Error(w, "reading the tap: "+err.Error(), http.StatusBadRequest)
		return
	}
	sess, err := h.o.Tap.StartTap(q)
	if errors.Is(err, meshserver.ErrTooManyTaps) {
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer sess.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	write := func(ev TapEvent) bool {
		if err := enc.Encode(ev); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	reason := "the tap's duration passed"
	for {
		select {
		case <-r.Context().Done():
			return
		case inst := <-sess.Joined:
			if !write(TapEvent{Type: "joined", Time: time.Now().UTC(), Instance: inst}) {
				return
			}
		case ev, ok := <-sess.Events:
			if !ok {
				write(TapEvent{Type: "end", Time: time.Now().UTC(), Dropped: sess.Dropped(), Reason: reason})
				return
			}
			if !write(tapEventOf(ev)) {
				return
			}
		}
	}
}

func tapEventOf(ev meshserver.TapEvent) TapEvent {
	e := ev.Event
	out := TapEvent{
		Type: "request", Time: time.Unix(0, e.GetUnixNano()).UTC(), Instance: ev.Instance, Service: ev.Identity.Service,
		Direction: "outbound", Caller: e.GetCaller(), Callee: e.GetCallee(), Upstream: e.GetUpstreamInstance(),
		Route: e.GetRoute(), Method: e.GetMethod(), Authority: e.GetAuthority(), Path: e.GetPath(),
		Status: int(e.GetStatus()), GRPCStatus: e.GetGrpcStatus(), LatencyMs: float64(e.GetLatencyUs()) / 1000,
		RequestBytes: e.GetRequestBytes(), ResponseBytes: e.GetResponseBytes(), Tries: int(e.GetTries()), Denied: e.GetDenied(),
	}
	if e.GetInbound() {
		out.Direction = "inbound"
	}
	return out
}

// TapURL is the path and query of GET /v1/tap for q's fields as the CLI
// takes them (empty ones left out).
func TapURL(params map[string]string) string {
	v := url.Values{}
	for k, s := range params {
		if s != "" {
			v.Set(k, s)
		}
	}
	return "/v1/tap?" + v.Encode()
}

// Stream sends GET path and calls each with every line of the answer
// until the answer ends, ctx ends or each returns an error. Unlike Call it
// has no overall timeout (a tap lasts its duration).
func (c *Client) Stream(ctx context.Context, path string, each func(line []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("asking the controller at %s: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.explain(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b [4096]byte
		n, _ := resp.Body.Read(b[:])
		return &StatusError{Method: http.MethodGet, URL: c.base + path, Code: resp.StatusCode, Status: resp.Status, Message: strings.TrimSpace(string(b[:n]))}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if err := each(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading the controller's stream of %s: %w", path, err)
	}
	return nil
}

// Tap streams GET /v1/tap with params (see TapQueryOf) into each.
func (c *Client) Tap(ctx context.Context, params map[string]string, each func(TapEvent) error) error {
	return c.Stream(ctx, TapURL(params), func(line []byte) error {
		var ev TapEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("decoding a tap event: %w", err)
		}
		return each(ev)
	})
}
