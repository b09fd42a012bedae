package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/guard"
	"github.com/weftmesh/weft/core/proxy/h1"
	"github.com/weftmesh/weft/core/proxy/ratelimit"
	"github.com/weftmesh/weft/core/spiffe"
)

// The inbound listener's HTTP/1.1 engines. net/http (the default) serves
// every feature; the byte-level engine (core/proxy/h1, chosen with
// Options.HTTP1Engine or WEFT_HTTP1_ENGINE=bytes) serves the requests of
// an HTTP/1.1 connection on the bytes it read, with no http.Request and
// no goroutine but the connection's, for the features it handles:
//
//   - the caller's identity from its certificate; the canonical method
//     and path (canon.Target) refused or authorized by the intentions and
//     their L7 permissions on method and path (authz, with the same
//     http.Request view the rules read in the net/http path);
//   - L7 rules that read headers or the query (the same checks of
//     repeated and respelled inputs, ruleInputs.check, on an http.Header
//     built from the fields: on such listeners only, this allocates);
//   - rate limits (per caller, per source IP, matched as the rules are);
//   - load shedding (protect's MaxInFlight) and the head, header count
//     and body limits (h1.Limits from the listener's protect settings);
//   - X-Weft-Caller and X-Forwarded-Client-Cert set, the owned and the
//     forwarded headers the client sent removed in any spelling, but
//     for a caller whose forwarded headers are relayed (a gateway,
//     Inbound.forwarding_callers): its X-Forwarded-For and
//     X-Forwarded-Proto go on, in the spellings net/http's reader merges
//     into those names (any case, dashes), as the net/http path relays
//     them; its X-Forwarded-Host, Forwarded and underscore spellings are
//     removed as anyone's;
//   - the request ID (kept when sane, else a new one), the access log
//     line, the request metrics, the caller's golden signals, tap;
//   - the app's signal headers taken off its responses, the app's
//     refusal answered with the retryable signal (503, X-Weft-Unavailable).
//
// A request needing anything else is handed, with its connection, to the
// net/http engine (Verdict HandOff: the connection stays there), so that
// behaviour never changes with the engine: tracing on, end-user JWT
// checks, the application reported down by its health check (the signal waits for
// the body), upgrades (WebSocket, h2c) and gRPC's content type. HTTP/2
// (ALPN h2) never reaches it.

// HTTP1 engines (Options.HTTP1Engine).
const (
	HTTP1NetHTTP = "nethttp"
	HTTP1Bytes   = "bytes"
)

// envHTTP1Engine names the environment variable read when
// Options.HTTP1Engine is empty.
const envHTTP1Engine = "WEFT_HTTP1_ENGINE"

// http1Engine is the engine o chooses, or an error naming the choices.
func http1Engine(o Options) (string, error) {
	e := o.HTTP1Engine
	if e == "" {
		e = os.Getenv(envHTTP1Engine)
	}
	switch e {
	case "", HTTP1NetHTTP:
		return HTTP1NetHTTP, nil
	case HTTP1Bytes:
		return HTTP1Bytes, nil
	}
	return "", fmt.Errorf("choosing the HTTP/1.1 engine: %q is none; set %s (or Options.HTTP1Engine) to %q or %q", e, envHTTP1Engine, HTTP1NetHTTP, HTTP1Bytes)
}

// bytesServes reports whether the byte-level engine serves requests of
// a listener in state st (what it does not handle is listed above).
func (in *inbound) bytesServes(st *inboundState) bool {
	return !in.p.tracer.Enabled() && st.jwt == nil
}

// serveBytes serves an HTTP/1.1 connection with the byte-level engine,
// and hands it to the net/http server when a request needs that.
func (in *inbound) serveBytes(conn *tls.Conn, caller spiffe.Identity) {
	c := &bytesConn{in: in, conn: conn, caller: caller, callerID: caller.String(), remote: conn.RemoteAddr().String()}
	c.view.URL = &c.url
	c.view.RemoteAddr = c.remote
	c.view.Proto, c.view.ProtoMajor, c.view.ProtoMinor = "HTTP/1.1", 1, 1
	s := in.shield.Settings()
	c.fwd = h1.Forwarder{
		Limits:            h1.Limits{MaxHeaderBytes: s.MaxHeaderBytes, MaxHeaderCount: s.MaxHeaderCount, MaxBodyBytes: s.MaxRequestBodyBytes},
		Dial:              c.dial,
		RemoveResponse:    []string{HeaderUnavailable, HeaderDenied},
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
	}
	c.fwd.GoServeConnHook(conn, c, func(rest []byte, err error) {
		if !errors.Is(err, h1.ErrHandOff) {
			return
		}
		if !in.http.ln.push(&handedConn{Conn: conn, tls: conn, rest: rest}) {
			conn.Close()
		}
	})
}

// handedConn is a connection the byte-level engine handed to the
// net/http server: what the engine read and did not use is read first.
type handedConn struct {
	net.Conn
	tls  *tls.Conn
	rest []byte
}

func (h *handedConn) Read(p []byte) (int, error) {
	if len(h.rest) > 0 {
		n := copy(p, h.rest)
		h.rest = h.rest[n:]
		return n, nil
	}
	return h.Conn.Read(p)
}

// bytesConn is the h1.Hook of one inbound connection: the caller and the
// view of the current request that the rules read.
type bytesConn struct {
	in       *inbound
	conn     net.Conn
	fwd      h1.Forwarder
	caller   spiffe.Identity
	callerID string
	remote   string

	xfccFor, xfcc string // xfcc is the X-Forwarded-Client-Cert value for own ID xfccFor

	// The current exchange.
	st        *inboundState
	start     time.Time
	seen      bool // Request saw the current exchange
	entered   bool // the shield counts it in flight
	view      http.Request
	url       url.URL
	method    []byte // copies: the head's bytes are reused while the body streams
	path      []byte
	host      []byte
	requestID string
	traceID   string
	reason    string // why the proxy answered itself
	denied    string
	refused   bool // by authorization (for the golden signals)
	keptID    bool // the client's request ID goes on unchanged
	relay     bool // the caller's X-Forwarded-For and -Proto go on (a gateway)
	set       [4]h1.Field
	idBuf     []byte
	callerVal []byte // callerID
	xfccVal   []byte // xfcc
}

// The names of the fields the byte-level engine sets.
var (
	nameCaller    = []byte(headerCaller)
	nameXFCC      = []byte(headerXFCC)
	nameRequestID = []byte(headerRequestID)
)

// bstr views b as a string: b is not written while the string is in use.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// methods are the standard methods as constants: a request's method is
// named without a copy.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace}

func methodString(b []byte) string {
	for _, m := range methods {
		if string(b) == m {
			return m
		}
	}
	return string(b)
}

func (c *bytesConn) Request(x *h1.Exchange) h1.Verdict {
	in, r := c.in, x.Req
	st := in.st.Load()
	if !in.bytesServes(st) || r.Upgrade || hasPrefixField(r, "Content-Type", "application/grpc") {
		return h1.HandOff
	}
	if down, _ := in.p.health.down(); down {
		return h1.HandOff // the signal waits for the body (drainForReplay)
	}
	c.st, c.start, c.seen = st, time.Now(), true
	c.reason, c.denied, c.refused = "", "", false
	c.relay = st.forwarders[c.callerID]
	c.method = append(c.method[:0], r.Method...)
	c.path = append(c.path[:0], r.Path...)
	c.host = append(c.host[:0], r.Host...)
	v := &c.view
	v.Method = methodString(c.method)
	v.Host = bstr(c.host)
	v.RequestURI = ""
	c.url = url.URL{RawQuery: r.Query}
	canon.SetPath(&c.url, bstr(c.path))
	v.ContentLength = r.ContentLength
	v.Header = nil
	readsInput := len(st.inputs.headers) > 0 || len(st.inputs.query) > 0
	if readsInput {
		// Rules that read headers or the query see them as in the
		// net/http path: names canonical as its reader makes them.
		// This allocates, on such listeners only.
		v.Header = make(http.Header, len(r.Fields))
		for _, f := range r.Fields {
			k := http.CanonicalHeaderKey(string(f.Name))
			v.Header[k] = append(v.Header[k], string(f.Value))
		}
	}
	c.requestID, c.traceID = c.ids(r)
	x.Set = x.Set[:0]
	if !c.keptID {
		x.Set = append(x.Set, h1.Field{Name: nameRequestID, Value: c.idBuf})
	}
	if !in.shield.Enter() {
		in.p.metrics.shielded.WithLabelValues(KeyInbound, protect.ReasonShed).Inc()
		c.reason = fmt.Sprintf("weft: the %s listener is saturated (%d requests in flight); retry in a second", KeyInbound, in.shield.Settings().MaxInFlight)
		x.Close = true
		x.Answer(http.StatusServiceUnavailable, c.fields("Retry-After", "1", "X-Weft-Overloaded", "true"), errorBody(c.reason))
		return h1.Answered
	}
	c.entered = true
	in.p.bytesServed.Add(1)
	if c.caller.Service == "" {
		c.reason = "weft: the caller's identity is unknown"
		x.Answer(http.StatusForbidden, c.fields(HeaderDenied, "1", "", ""), errorBody(c.reason))
		return h1.Answered
	}
	var query url.Values
	if readsInput {
		q, bad := st.inputs.check(v, st.service)
		if bad != nil {
			in.p.note(callerSource(c.caller), guard.BadRequest)
			in.p.accessLine("access", "inbound", "REFUSED").str("caller", c.callerID).str("dest", st.service).
				str("method", v.Method).str("target", string(r.Target)).str("reason", bad.Error()).str("authority", v.Host).
				strIf("request_id", c.requestID).strIf("trace_id", c.traceID).send(in.p)
			x.Answer(http.StatusBadRequest, c.fields("", "", "", ""), errorBody("weft: bad request: "+bad.Error()))
			return h1.Answered
		}
		query = q
	}
	if ok, why, _ := st.authz.AuthorizeRequestJWT(c.caller, v, query, nil); !ok {
		in.p.metrics.denied.WithLabelValues(c.caller.Service).Inc()
		in.p.note(callerSource(c.caller), guard.Denied)
		in.p.stats.denied(in.p.stats.caller(c.caller), c.caller, v.Method, strings.Clone(c.url.Path), why) // kept
		c.denied, c.reason, c.refused = why, why, true
		in.p.accessLine("access", "inbound", "DENIED").str("caller", c.callerID).str("dest", st.service).
			str("method", v.Method).str("path", c.url.Path).str("reason", why).str("authority", v.Host).
			strIf("request_id", c.requestID).strIf("trace_id", c.traceID).send(in.p)
		x.Answer(http.StatusForbidden, c.fields(HeaderDenied, "1", "", ""), errorBody(why))
		return h1.Answered
	}
	for _, l := range st.limits {
		if ok, wait := l.AllowSubject(c.caller.Service, "", v, time.Now()); !ok {
			in.p.metrics.limited.WithLabelValues(c.caller.Service, l.Name()).Inc()
			if l.PerSourceIP() {
				in.p.note(protect.SourceIP(c.remote), guard.RateLimited)
			} else {
				in.p.note(callerSource(c.caller), guard.RateLimited)
			}
			c.reason = fmt.Sprintf("weft: rate limit %q of %s exceeded for %s; retry in %s", l.Name(), st.service, c.caller.Service, wait.Round(time.Millisecond))
			x.Answer(http.StatusTooManyRequests, c.fields("Retry-After", ratelimit.RetryAfter(wait), "", ""), errorBody(c.reason))
			return h1.Answered
		}
	}
	if c.xfccVal == nil || c.xfccFor != st.ownID {
		c.xfccFor, c.xfcc = st.ownID, "By="+st.ownID+";URI="+c.callerID
		c.xfccVal, c.callerVal = []byte(c.xfcc), []byte(c.callerID)
	}
	x.Set = append(x.Set, h1.Field{Name: nameCaller, Value: c.callerVal}, h1.Field{Name: nameXFCC, Value: c.xfccVal})
	if c.relay {
		// A gateway's, in x.Set: they go on even when its Connection
		// header names them, as rewrite copies them back in the
		// net/http path. The head is written before its buffer is reused.
		for _, f := range r.Fields {
			if name := relayedName(bstr(f.Name)); name != nil {
				x.Set = append(x.Set, h1.Field{Name: name, Value: f.Value})
			}
		}
	}
	return h1.Forward
}

// ids finds r's request ID (keeping a sane one, else making one: keptID
// says which) and trace ID.
func (c *bytesConn) ids(r *h1.Request) (requestID, traceID string) {
	var id, tp []byte
	ids, tps := 0, 0
	for _, f := range r.Fields {
		switch {
		case len(f.Name) == len(headerRequestID) && strings.EqualFold(bstr(f.Name), headerRequestID):
			id, ids = f.Value, ids+1
		case len(f.Name) == len("Traceparent") && strings.EqualFold(bstr(f.Name), "Traceparent"):
			tp, tps = f.Value, tps+1
		}
	}
	if ids == 1 && saneRequestID(bstr(id)) {
		c.idBuf = append(c.idBuf[:0], id...)
		c.keptID = true
	} else {
		c.idBuf = appendRequestID(c.idBuf[:0]) // no allocation
		c.keptID = false
	}
	if tps == 1 {
		traceID = traceIDOf(string(tp))
	}
	return bstr(c.idBuf), traceID
}

// hasPrefixField reports whether r has a field name whose value begins
// with prefix.
func hasPrefixField(r *h1.Request, name, prefix string) bool {
	for _, f := range r.Fields {
		if len(f.Name) == len(name) && strings.EqualFold(bstr(f.Name), name) &&
			len(f.Value) >= len(prefix) && string(f.Value[:len(prefix)]) == prefix {
			return true
		}
	}
	return false
}

// fields are an answer's header fields (answerFields).
func (c *bytesConn) fields(k1, v1, k2, v2 string) []h1.Field {
	return answerFields(c.set[:0], k1, v1, k2, v2)
}

// answerFields appends to set the header fields of an answer the proxy
// writes itself, as http.Error writes them, with up to two more (name ""
// for none).
func answerFields(set []h1.Field, k1, v1, k2, v2 string) []h1.Field {
	f := append(set, h1.Field{Name: []byte("Content-Type"), Value: []byte("text/plain; charset=utf-8")},
		h1.Field{Name: []byte("X-Content-Type-Options"), Value: []byte("nosniff")})
	for _, kv := range [2][2]string{{k1, v1}, {k2, v2}} {
		if kv[0] != "" {
			f = append(f, h1.Field{Name: []byte(kv[0]), Value: []byte(kv[1])})
		}
	}
	return f
}

// errorBody is http.Error's body for msg.
func errorBody(msg string) []byte { return []byte(msg + "\n") }

// Remove drops what the client sent of the headers the proxy owns and
// of the forwarded ones, in any case and with underscores for dashes (a
// gateway's X-Forwarded-For and X-Forwarded-Proto go on in x.Set).
func (c *bytesConn) Remove(name []byte) bool {
	n := bstr(name)
	if isOwnedName(n) {
		return true
	}
	for _, f := range forwardedHeaders {
		if len(n) == len(f) && equalFoldDashed(n, f) {
			return true
		}
	}
	return false
}

// nameRelayed are relayedForwarded's names, as the engine writes them.
var nameRelayed = func() [][]byte {
	n := make([][]byte, len(relayedForwarded))
	for i, k := range relayedForwarded {
		n[i] = []byte(k)
	}
	return n
}()

// relayedName is the relayedForwarded name that name is as net/http's
// reader names it (any case, with dashes: an underscore spelling is a
// header of another name there, which stripForwarded removes), or nil.
func relayedName(name string) []byte {
	for i, k := range relayedForwarded {
		if len(name) == len(k) && strings.EqualFold(name, k) {
			return nameRelayed[i]
		}
	}
	return nil
}

func (c *bytesConn) Done(x *h1.Exchange) {
	in := c.in
	if !c.seen {
		// A head the engine refused (canon's rules, limits, framing):
		// the net/http path answers such a request 400 from
		// Canonicalize, or its server refuses it.
		st := in.st.Load()
		if c.caller.Service != "" {
			in.p.note(callerSource(c.caller), guard.BadRequest)
		}
		if x.Status == http.StatusRequestHeaderFieldsTooLarge || x.Status == http.StatusRequestEntityTooLarge {
			reason := protect.ReasonHeaderCount
			if x.Status == http.StatusRequestEntityTooLarge {
				reason = protect.ReasonBodyTooLarge
			}
			in.p.metrics.shielded.WithLabelValues(KeyInbound, reason).Inc()
		}
		method, target := string(x.Req.Method), string(x.Req.Target)
		in.p.accessLine("access", "inbound", "REFUSED").str("caller", c.callerID).str("dest", st.service).
			str("method", method).str("target", target).str("reason", x.Refusal).send(in.p)
		// As net/http decoded the path, when it could.
		path := target
		if u, err := url.ParseRequestURI(target); err == nil {
			path = u.Path
		}
		in.p.accessLine("access", "inbound").str("caller", c.callerID).str("dest", st.service).
			str("method", method).str("path", path).int("status", int64(x.Status)).dur("dur", 0).send(in.p)
		in.p.metrics.request(dirInbound, c.caller.Service, "", "", x.Status, 0)
		in.p.stats.caller(c.caller).observe(succeeded(x.Status, "", false), 0)
		return
	}
	c.seen = false
	if c.entered {
		in.shield.Leave()
		c.entered = false
	}
	d := time.Since(c.start)
	st := c.st
	if x.Upstream {
		in.p.health.answered()
	}
	if x.Refusal != "" && c.reason == "" && x.Status >= 400 {
		c.reason = x.Refusal
	}
	in.p.metrics.request(dirInbound, c.caller.Service, "", "", x.Status, d)
	in.p.stats.caller(c.caller).observe(succeeded(x.Status, "", c.refused), d)
	in.p.accessLine("access", "inbound").str("caller", c.callerID).str("dest", st.service).
		str("method", c.view.Method).str("path", c.url.Path).int("status", int64(x.Status)).
		dur("dur", d).str("authority", c.view.Host).strIf("request_id", c.requestID).strIf("trace_id", c.traceID).
		int("bytes_in", x.BytesIn).int("bytes_out", x.BytesOut).strIf("reason", c.reason).send(in.p)
	if in.p.tapping() {
		// The event outlives the buffers the views are of.
		in.p.tapInboundView(tapView{method: c.view.Method, authority: strings.Clone(c.view.Host), path: strings.Clone(c.url.Path), status: x.Status,
			reqBytes: c.view.ContentLength, respBytes: x.BytesOut}, c.caller, st.service, c.start, d, c.denied)
	}
}

// Idle notes the connection waiting for a request (or no longer), and
// refuses to wait once the listener is closing.
func (c *bytesConn) Idle(idle bool) bool { return c.in.idleBytes.idle(c.conn, idle) }

// dial reaches the application at the address of the configuration in
// force.
func (c *bytesConn) dial() (net.Conn, error) {
	addr := c.in.st.Load().appAddr
	d := net.Dialer{Timeout: c.in.p.opts.DialTimeout}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, &appDialError{addr: addr, err: err}
	}
	return conn, nil
}

// UpstreamFailed answers as proxyError does a request the app did not
// answer: the retryable signal when the app refused the connection (and
// the app is taken down at once) or when the request is safe to repeat;
// else 502.
func (c *bytesConn) UpstreamFailed(x *h1.Exchange, err error) {
	in := c.in
	st := in.st.Load()
	msg := fmt.Sprintf("weft: calling the application of %s at %s: %v; is it running and listening there?", st.service, st.appAddr, err)
	in.p.log.Warn("inbound: calling the application", "err", msg)
	var de *appDialError
	if errors.As(err, &de) {
		in.p.health.refused(de.addr, fmt.Sprintf("connecting to the application at %s: %v", de.addr, de.err))
	}
	if de != nil || safeToRepeatMethod(c.view.Method) && x.Req.ContentLength == 0 && !x.Req.Chunked() {
		in.p.metrics.unavailable.Inc()
		x.Answer(http.StatusServiceUnavailable, c.fields(HeaderUnavailable, ValueUnavailableApp, "", ""), errorBody(msg))
		return
	}
	x.Answer(http.StatusBadGateway, c.fields("", "", "", ""), errorBody(msg))
}

// safeToRepeatMethod: safeToRepeat's methods.
func safeToRepeatMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Interface guards.
var (
	_ h1.Hook           = (*bytesConn)(nil)
	_ h1.UpstreamFailer = (*bytesConn)(nil)
	_ h1.Idler          = (*bytesConn)(nil)
)
