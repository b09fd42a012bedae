package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/balance"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/h1"
	"github.com/weftmesh/weft/core/proxy/h1pool"
	"github.com/weftmesh/weft/core/proxy/retry"
)

// The outbound listener's byte-level HTTP/1.1 engine (WEFT_HTTP1_ENGINE=
// bytes, as the inbound's: inbound_bytes.go). For a PROTOCOL_HTTP
// upstream it serves the app's HTTP/1.1 requests on the bytes it read:
//
//   - the route (method, path, header and query matches on the same
//     http.Request view the net/http path matches; a view with headers
//     only when a route or the hash policy reads them), its split, the
//     endpoint (balancer, hash policy, outlier detection's ejections);
//   - the circuit breaker (max_requests and max_pending, max_connections
//     through the pool, max_retries), the request timeout and the retry
//     policy's per-try timeout, as deadlines on the upstream connection;
//   - tries: a failed dial or a connection that took no byte go
//     elsewhere, a stale pooled connection carries a request that is safe
//     to repeat once more, the retry policy's errors and statuses within
//     its attempts and budget, and the callee sidecar's signal that its
//     app cannot take requests (503, X-Weft-Unavailable) to another
//     endpoint, as exchange does in outbound.go;
//   - mTLS to the peer sidecar over h1pool's pooled connections, shared
//     with the net/http path (Pool.Lease);
//   - the request ID, the metrics, golden signals, access log and tap.
//
// The engine reads each request whole before its first try (h1.Upstreams):
// bodies of up to h1.ReplayMax bytes with a Content-Length. The rest is
// handed, with the bytes already read, to the net/http server of the
// listener, so that behaviour never changes with the engine: chunked and
// larger bodies, upgrades (WebSocket, h2c), HTTP/2 with prior knowledge,
// gRPC's content type, tracing on, external services, routes with a
// fault, a mirror, header changes or a stream timeout.
//
// The ingress gateway's route leg reuses outConn (gateway_bytes.go): one
// per client connection and route outbound, its Request split in prepare
// (routing and the hand-off decision, acting on nothing) and begin, so
// that the gateway's own checks run between them; for a gateway, the
// listener's shield counts the request, and a callee sidecar's own
// refusal is answered with a generic body (keepScrubbed).

// bytesServes reports whether the byte-level engine serves requests of an
// upstream in state st.
func (o *outbound) bytesServes(st *outboundState) bool {
	return o.h1 != nil && st.ext == nil && !o.p.tracer.Enabled()
}

// serveBytes serves an HTTP/1.1 connection of the app with the byte-level
// engine, and hands it to the net/http server when a request needs that.
func (o *outbound) serveBytes(conn net.Conn) {
	c := &outConn{o: o, conn: conn, endRetry: noop}
	c.view.URL = &c.url
	c.view.RemoteAddr = conn.RemoteAddr().String()
	c.view.Proto, c.view.ProtoMajor, c.view.ProtoMinor = "HTTP/1.1", 1, 1
	s := o.shield.Settings()
	c.fwd = h1.Forwarder{
		Limits:            h1.Limits{MaxHeaderBytes: s.MaxHeaderBytes, MaxHeaderCount: s.MaxHeaderCount, MaxBodyBytes: s.MaxRequestBodyBytes},
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
		HandOffPrior:      true,
	}
	c.fwd.GoServeConnHook(conn, c, func(rest []byte, err error) {
		if !errors.Is(err, h1.ErrHandOff) {
			return
		}
		if !o.http.ln.push(&handedConn{Conn: conn, rest: rest}) {
			conn.Close()
		}
	})
}

func noop() {}

// outConn is the h1.Hook (and h1.Upstreams) of one app connection to an
// outbound listener.
type outConn struct {
	o    *outbound
	conn net.Conn
	fwd  h1.Forwarder

	// The current exchange.
	st        *outboundState
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
	keptID    bool
	idBuf     []byte
	set       [4]h1.Field
	reason    string // why the proxy answered itself
	overload  bool   // the breaker refused it
	shed      bool   // the shield refused it (the net/http path's shield logs nothing)

	pk        picked
	rp        *retry.Policy
	attempts  int
	resend    bool // a stale pooled connection may carry it again
	hb        balance.HashBalancer
	hash      uint64
	hashed    bool
	skip      map[*endpoint]bool
	ep        *endpoint
	onEP      bool // ep counts the request in flight (Enter)
	lease     h1pool.Leased
	brRelease func()
	endRetry  func()
	deadline  time.Time // the request timeout's end; zero: none
	perTry    bool      // the try's deadline is the per-try timeout's
	again     bool      // the next try goes to ep again (a stale connection)
	noneLeft  bool      // no endpoint was left to try
	timedOut  bool      // the request timeout ended it
	lastErr   error     // why the last try failed, as the net/http path says it

	// gw is the gateway connection whose route this outConn serves (nil:
	// a sidecar's app connection).
	gw *gwConn
	// scrub: a gateway request's response was a callee sidecar's own
	// refusal (HeaderDenied), answered with a generic body in its place
	// (scrubbed), as gatewayWriter does; scrubFields are its header
	// fields, in scrubBuf.
	scrub       bool
	scrubStatus int
	scrubFields []h1.Field
	scrubBuf    []byte
}

// Request decides on the app's request: handed off when the byte path
// does not serve it, answered when the breaker refuses it, else
// forwarded through the tries of Upstream and Again.
func (c *outConn) Request(x *h1.Exchange) h1.Verdict {
	st, timeout, ok := c.prepare(x.Req)
	if !ok {
		return h1.HandOff
	}
	return c.begin(x, st, timeout)
}

// prepare routes the request r without acting on it (nothing counted,
// no slot taken): false when the byte path does not serve it. It leaves
// the route and pool in c.pk, and returns the state in force and the
// request timeout. The gateway (gateway_bytes.go) calls it before its
// own checks, begin after them.
func (c *outConn) prepare(r *h1.Request) (*outboundState, time.Duration, bool) {
	o := c.o
	st := o.st.Load()
	if !o.bytesServes(st) || r.Upgrade || r.Chunked() || r.ContentLength > h1.ReplayMax ||
		hasPrefixField(r, "Content-Type", "application/grpc") {
		return nil, 0, false
	}
	c.method = append(c.method[:0], r.Method...)
	c.path = append(c.path[:0], r.Path...)
	c.host = append(c.host[:0], r.Host...)
	v := &c.view
	v.Method = methodString(c.method)
	v.Host = bstr(c.host)
	c.url = url.URL{RawQuery: r.Query}
	canon.SetPath(&c.url, bstr(c.path))
	v.ContentLength = r.ContentLength
	v.Header = nil
	if st.readsHeaders {
		// Routes or the hash policy read headers: they see them as in
		// the net/http path. This allocates, on such upstreams only.
		v.Header = make(http.Header, len(r.Fields))
		for _, f := range r.Fields {
			k := http.CanonicalHeaderKey(string(f.Name))
			v.Header[k] = append(v.Header[k], string(f.Value))
		}
	}
	c.pk = picked{pool: st.all}
	timeout := st.request
	for _, rt := range st.routes {
		if rt.matches(v) {
			if rt.fault != nil || rt.mirror != nil || rt.reqHdrs != nil || rt.respHdrs != nil || rt.stream > 0 {
				return nil, 0, false
			}
			c.pk.route, timeout = rt, rt.request
			break
		}
	}
	if c.pk.route == nil && st.stream > 0 {
		return nil, 0, false
	}
	return st, timeout, true
}

// begin starts the exchange prepare routed: the request ID, the shield
// (not for a gateway's request: its listener's shield counted it), the
// circuit breaker, the retry policy and the endpoint's pick.
func (c *outConn) begin(x *h1.Exchange, st *outboundState, timeout time.Duration) h1.Verdict {
	o, r, v := c.o, x.Req, &c.view
	c.st, c.start, c.seen = st, time.Now(), true
	c.reason, c.overload, c.shed, c.scrub = "", false, false, false
	if rt := c.pk.route; rt != nil && len(rt.splits) > 0 {
		c.pk.pool = rt.pick(o.intn())
	}
	c.requestID, c.traceID = c.ids(r)
	x.Set = x.Set[:0]
	if !c.keptID {
		x.Set = append(x.Set, h1.Field{Name: nameRequestID, Value: c.idBuf})
	}
	if c.gw == nil && !o.shield.Enter() {
		o.p.metrics.shielded.WithLabelValues(o.key(), protect.ReasonShed).Inc()
		c.reason = fmt.Sprintf("weft: the %s listener is saturated (%d requests in flight); retry in a second", o.key(), o.shield.Settings().MaxInFlight)
		x.Close, c.shed = true, true
		x.Answer(http.StatusServiceUnavailable, c.fields("Retry-After", "1", "X-Weft-Overloaded", "true"), errorBody(c.reason))
		return h1.Answered
	}
	c.entered = c.gw == nil
	o.p.bytesServed.Add(1)
	c.deadline = time.Time{}
	if timeout > 0 {
		c.deadline = c.start.Add(timeout)
	}
	release, ok := c.acquire(st)
	if !ok {
		o.p.metrics.overflow.WithLabelValues(st.service, "max_requests").Inc()
		c.reason = fmt.Sprintf("weft: circuit breaker of service %s: %d requests in flight and %d waiting; try again later",
			st.service, st.breaker.Config().GetMaxRequests(), st.breaker.Config().GetMaxPending())
		c.overload = true
		x.Answer(http.StatusServiceUnavailable, c.fields("X-Weft-Overloaded", "true", "", ""), errorBody(c.reason))
		return h1.Answered
	}
	c.brRelease = release
	c.rp, c.attempts = nil, maxAttempts
	if c.pk.route != nil && c.pk.route.retry != nil {
		c.rp = c.pk.route.retry
		c.rp.Request()
		c.attempts = max(c.rp.Attempts(), 1)
	}
	c.resend = r.ContentLength == 0 && (safeToRepeatMethod(v.Method) || hasField(r, "Idempotency-Key") || hasField(r, "X-Idempotency-Key"))
	c.hb, c.hashed = nil, false
	if hb, ok := c.pk.pool.lb.(balance.HashBalancer); ok {
		if h, ok := balance.HashKey(st.hash, v, st.self); ok {
			c.hb, c.hash, c.hashed = hb, h, true
		}
	}
	c.skip = st.det.Skip(c.pk.pool.eps)
	c.ep, c.again, c.noneLeft, c.timedOut, c.lastErr = nil, false, false, false, nil
	return h1.Forward
}

// acquire takes a request slot of the circuit breaker, waiting (as one
// of max_pending) no longer than the request timeout.
func (c *outConn) acquire(st *outboundState) (func(), bool) {
	ctx := context.Background()
	if !c.deadline.IsZero() && st.breaker.Config().GetMaxRequests() > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, c.deadline)
		defer cancel()
	}
	return st.breaker.Acquire(ctx, c.o.p.metrics.pending.WithLabelValues(st.service))
}

// ids finds r's request ID (keeping a sane one, else making one) and
// trace ID, as inbound_bytes.go's.
func (c *outConn) ids(r *h1.Request) (requestID, traceID string) {
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
		c.idBuf = appendRequestID(c.idBuf[:0])
		c.keptID = false
	}
	if tps == 1 {
		traceID = traceIDOf(string(tp))
	}
	return bstr(c.idBuf), traceID
}

// hasField reports whether r has a field of that name.
func hasField(r *h1.Request, name string) bool {
	for _, f := range r.Fields {
		if len(f.Name) == len(name) && strings.EqualFold(bstr(f.Name), name) {
			return true
		}
	}
	return false
}

// fields are an answer's header fields (answerFields).
func (c *outConn) fields(k1, v1, k2, v2 string) []h1.Field {
	return answerFields(c.set[:0], k1, v1, k2, v2)
}

// forwardedNames are the fields net/http's reverse proxy takes off every
// request it rewrites.
var forwardedNames = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// Remove drops the forwarded fields, as the net/http path does.
func (c *outConn) Remove(name []byte) bool {
	for _, n := range forwardedNames {
		if len(name) == len(n) && strings.EqualFold(bstr(name), n) {
			return true
		}
	}
	return false
}

// pick is the balancer's pick for the current request.
func (c *outConn) pick(skip map[*endpoint]bool) *endpoint {
	if c.hashed {
		return c.hb.PickHash(c.hash, skip)
	}
	return c.pk.pool.lb.Pick(skip)
}

// where names the pool of the current request, for errors.
func (c *outConn) where() string {
	if c.pk.pool.subset != "" {
		return fmt.Sprintf("subset %s of service %s", c.pk.pool.subset, c.st.service)
	}
	return "service " + c.st.service
}

// errNoneLeft is Upstream's error when no endpoint is left to try.
var errNoneLeft = errors.New("no endpoint left to try")

// Upstream picks the endpoint of a new try (or keeps it, for a request
// that goes again after a stale connection) and leases a connection to
// it, its deadline the per-try timeout's or the request's.
func (c *outConn) Upstream(x *h1.Exchange) (net.Conn, bool, error) {
	if c.scrub {
		return nil, false, errScrubbed
	}
	if !c.again || c.ep == nil {
		ep := c.pick(c.skip)
		if ep == nil && len(c.skip) > 0 && c.rp != nil {
			c.skip = nil // every endpoint failed once: start over
			ep = c.pick(nil)
		}
		if ep == nil {
			c.noneLeft = true
			return nil, false, errNoneLeft
		}
		c.ep, c.onEP = ep, true
		ep.Enter()
		c.pk.tries++
	}
	c.again = false
	ctx := context.Background()
	if !c.deadline.IsZero() && c.st.breaker.Config().GetMaxConnections() > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, c.deadline)
		defer cancel()
	}
	l, err := c.o.h1.Lease(ctx, c.ep.Addr, !c.resend)
	if err != nil {
		if ctx.Err() != nil {
			c.timedOut = true
		}
		c.lastErr = err
		return nil, false, err
	}
	c.lease = l
	d := c.deadline
	c.perTry = false
	if c.rp != nil && c.rp.PerTry() > 0 {
		if t := time.Now().Add(c.rp.PerTry()); d.IsZero() || t.Before(d) {
			d, c.perTry = t, true
		}
	}
	if !d.IsZero() {
		l.Conn().SetDeadline(d)
	}
	return l.Conn(), l.Reused(), nil
}

// Again decides on a try as exchange.afterResponse and afterError do.
func (c *outConn) Again(x *h1.Exchange, t *h1.Try) bool {
	c.endRetry()
	c.endRetry = noop
	st, ep := c.st, c.ep
	last := c.pk.tries >= c.attempts
	if t.Err == nil {
		if c.perTry {
			c.lease.Conn().SetDeadline(c.deadline) // the per-try timeout ends with the response head
		}
		st.det.Observe(ep, balance.OutcomeOf(x.Resp.Status))
		if !last && responseUnavailable(x.Resp) && c.allowRetry() {
			o := c.o
			o.p.metrics.sigRetried.WithLabelValues(st.service).Inc()
			c.lastErr = fmt.Errorf("calling %s at %s: %w", c.where(), ep.Addr, errAppUnavailable)
			c.nextEndpoint()
			return true
		}
		if c.rp != nil && !last && c.rp.RetriableStatus(x.Resp.Status, "") && c.rp.AllowRetry() && c.takeRetrySlot() {
			c.lastErr = fmt.Errorf("calling %s at %s: status %d", c.where(), ep.Addr, x.Resp.Status)
			c.nextEndpoint()
			return true
		}
		c.pk.addr = ep.Addr
		if c.gw != nil && responseDenied(x.Resp) {
			c.keepScrubbed(x.Resp)
			return true // the response is dropped; UpstreamFailed answers
		}
		return false
	}
	if c.scrub || c.noneLeft || c.timedOut {
		return false
	}
	err := t.Err
	if t.Dial {
		err = c.lastErr // the pool's error, as the net/http path reports it
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !c.perTry {
		c.timedOut = true // the request timeout
		c.releaseEndpoint()
		return false
	}
	if t.Stale && c.resend {
		c.again = true // the pool sends it once more, to the same address
		return true
	}
	st.det.Observe(ep, balance.OutcomeLocal)
	if errors.Is(err, h1pool.ErrConnOverflow) {
		c.lastErr = err
		c.releaseEndpoint()
		return false
	}
	expired := c.perTry && errors.Is(err, os.ErrDeadlineExceeded)
	if expired {
		err = fmt.Errorf("no response headers within the per-try timeout %v", c.rp.PerTry())
	}
	c.lastErr = fmt.Errorf("calling %s at %s: %w", c.where(), ep.Addr, err)
	var de *dialError
	isDial := errors.As(err, &de)
	notSent := isDial || t.NotSent
	again := false
	if !last && (notSent || (c.rp != nil && c.rp.RetriableError(isDial, expired))) {
		again = notSent || c.rp.AllowRetry() && c.takeRetrySlot()
	}
	if again {
		c.nextEndpoint()
	} else {
		c.releaseEndpoint()
	}
	return again
}

// nextEndpoint leaves the endpoint of the try that failed out of the
// next ones.
func (c *outConn) nextEndpoint() {
	if c.skip == nil {
		c.skip = make(map[*endpoint]bool)
	}
	c.skip[c.ep] = true
	c.releaseEndpoint()
}

func (c *outConn) releaseEndpoint() {
	if c.onEP {
		c.ep.Leave()
		c.onEP = false
	}
}

// allowRetry: a try the callee's sidecar answered with the signal goes
// elsewhere within the retry budget (with a policy) and max_retries.
func (c *outConn) allowRetry() bool {
	if c.rp != nil && !c.rp.AllowRetry() {
		return false
	}
	return c.takeRetrySlot()
}

// takeRetrySlot takes a retry slot of the breaker, held until the next
// try's outcome is known.
func (c *outConn) takeRetrySlot() bool {
	done, ok := c.st.breaker.StartRetry()
	if !ok {
		c.o.p.metrics.overflow.WithLabelValues(c.st.service, "max_retries").Inc()
		return false
	}
	c.endRetry = done
	return true
}

// responseUnavailable is isAppUnavailable on a response head.
func responseUnavailable(r *h1.Response) bool {
	if r.Status != http.StatusServiceUnavailable {
		return false
	}
	for _, f := range r.Fields {
		if len(f.Name) == len(HeaderUnavailable) && strings.EqualFold(bstr(f.Name), HeaderUnavailable) {
			return bstr(f.Value) == ValueUnavailableApp
		}
	}
	return false
}

// errScrubbed ends the tries of a request whose response is scrubbed.
var errScrubbed = errors.New("the callee's refusal is answered by the gateway")

// responseDenied reports whether r is a callee sidecar's own refusal
// (HeaderDenied), whose body a gateway does not pass on.
func responseDenied(r *h1.Response) bool {
	for _, f := range r.Fields {
		if len(f.Name) == len(HeaderDenied) && strings.EqualFold(bstr(f.Name), HeaderDenied) {
			return true
		}
	}
	return false
}

// keepScrubbed keeps what of the refusal r reaches the gateway's client,
// as gatewayWriter passes it: the status and the header fields (the
// challenge), without the mark, the body's framing and the hop-by-hop
// ones, and a plain-text type for the generic body. The copy allocates,
// on refusals only.
func (c *outConn) keepScrubbed(r *h1.Response) {
	c.scrub, c.scrubStatus = true, r.Status
	c.scrubBuf = c.scrubBuf[:0]
	type span struct{ n0, n1, v0, v1 int }
	var spans []span
	for _, f := range r.Fields {
		switch name := bstr(f.Name); {
		case strings.EqualFold(name, HeaderDenied), strings.EqualFold(name, "Content-Length"),
			strings.EqualFold(name, "Content-Type"), strings.EqualFold(name, "Transfer-Encoding"),
			strings.EqualFold(name, "Connection"), strings.EqualFold(name, "Keep-Alive"),
			strings.EqualFold(name, "Trailer"), strings.EqualFold(name, "Upgrade"),
			strings.EqualFold(name, "Proxy-Connection"):
			continue
		}
		sp := span{n0: len(c.scrubBuf)}
		c.scrubBuf = append(c.scrubBuf, f.Name...)
		sp.n1, sp.v0 = len(c.scrubBuf), len(c.scrubBuf)
		c.scrubBuf = append(c.scrubBuf, f.Value...)
		sp.v1 = len(c.scrubBuf)
		spans = append(spans, sp)
	}
	c.scrubFields = append(c.scrubFields[:0], h1.Field{Name: []byte("Content-Type"), Value: []byte("text/plain; charset=utf-8")})
	for _, sp := range spans {
		c.scrubFields = append(c.scrubFields, h1.Field{Name: c.scrubBuf[sp.n0:sp.n1], Value: c.scrubBuf[sp.v0:sp.v1]})
	}
}

// scrubBody is the generic body of a scrubbed refusal, gatewayWriter's.
func (c *outConn) scrubBody() []byte {
	if c.scrubStatus == http.StatusUnauthorized {
		return []byte("weft gateway: authentication required\n")
	}
	return []byte("weft gateway: access denied\n")
}

// Release gives the try's connection back to the pool, and the endpoint
// its in-flight slot unless the request goes to it again.
func (c *outConn) Release(x *h1.Exchange, conn net.Conn, reuse bool) {
	if reuse && (c.perTry || !c.deadline.IsZero()) {
		conn.SetDeadline(time.Time{})
	}
	c.o.h1.Return(c.lease, reuse)
	c.lease = h1pool.Leased{}
	if !c.again {
		c.releaseEndpoint()
	}
}

// UpstreamFailed answers a request no try of which got a response, as
// proxyError does.
func (c *outConn) UpstreamFailed(x *h1.Exchange, err error) {
	o, st := c.o, c.st
	if c.scrub {
		c.scrub = false
		x.Answer(c.scrubStatus, c.scrubFields, c.scrubBody())
		return
	}
	if c.lastErr != nil {
		err = c.lastErr
	}
	code := http.StatusBadGateway
	var k, v string
	var msg string
	switch {
	case c.timedOut:
		msg = fmt.Sprintf("weft: calling service %s: %v", st.service, errRequestTimeout)
		code = http.StatusGatewayTimeout
	case c.noneLeft && c.lastErr == nil:
		msg = fmt.Sprintf("weft: %v of %s", errNoEndpoints, c.where())
		code = http.StatusServiceUnavailable
	case errors.Is(err, errAppUnavailable):
		msg = fmt.Sprintf("weft: %v", err)
		code, k, v = http.StatusServiceUnavailable, HeaderUnavailable, ValueUnavailableApp
	case errors.Is(err, h1pool.ErrConnOverflow):
		o.p.metrics.overflow.WithLabelValues(st.service, "max_connections").Inc()
		msg = fmt.Sprintf("weft: circuit breaker of service %s: %d connections busy and %d requests waiting; try again later",
			st.service, st.breaker.Config().GetMaxConnections(), st.breaker.Config().GetMaxPending())
		code, k, v = http.StatusServiceUnavailable, "X-Weft-Overloaded", "true"
	default:
		msg = fmt.Sprintf("weft: %v", err)
	}
	o.p.log.Warn("outbound: request failed", "service", st.service, "err", msg)
	x.Answer(code, c.fields(k, v, "", ""), errorBody(msg))
}

// Done records the exchange: metrics, golden signals, the access log,
// tap; and gives back the breaker's slot and the shield's.
func (c *outConn) Done(x *h1.Exchange) {
	o := c.o
	if !c.seen {
		// A head the engine refused (canon's rules, limits, framing):
		// the net/http path answers such a request 400 (Canonicalize),
		// or its server refuses it.
		st := o.st.Load()
		if x.Status == http.StatusRequestHeaderFieldsTooLarge || x.Status == http.StatusRequestEntityTooLarge {
			reason := protect.ReasonHeaderCount
			if x.Status == http.StatusRequestEntityTooLarge {
				reason = protect.ReasonBodyTooLarge
			}
			o.p.metrics.shielded.WithLabelValues(o.key(), reason).Inc()
		}
		o.count(st, nil, x.Status, "", 0)
		o.p.accessLine("access", "outbound", "REFUSED").str("dest", st.service).str("method", string(x.Req.Method)).
			str("target", string(x.Req.Target)).int("status", int64(x.Status)).str("reason", x.Refusal).send(o.p)
		return
	}
	c.seen = false
	if c.entered {
		o.shield.Leave()
		c.entered = false
	}
	if c.brRelease != nil {
		c.brRelease()
		c.brRelease = nil
	}
	c.endRetry()
	c.endRetry = noop
	if c.shed {
		return
	}
	d := time.Since(c.start)
	st, pk := c.st, &c.pk
	o.count(st, pk, x.Status, "", d)
	if c.overload {
		o.p.accessLine("access", "outbound").str("dest", st.service).str("method", c.view.Method).str("path", c.url.Path).
			int("status", http.StatusServiceUnavailable).str("overloaded", "true").strIf("caller", st.ownID).
			str("reason", "circuit breaker: max_requests").str("authority", c.view.Host).
			strIf("request_id", c.requestID).strIf("trace_id", c.traceID).send(o.p)
		return
	}
	routeName, subset, endpoint := "-", "-", "-"
	if pk.route != nil {
		routeName = pk.route.name
	}
	if pk.pool != nil && pk.pool.subset != "" {
		subset = pk.pool.subset
	}
	if pk.addr != "" {
		endpoint = pk.addr
	}
	o.p.accessLine("access", "outbound").str("dest", st.service).str("route", routeName).str("subset", subset).
		str("endpoint", endpoint).str("method", c.view.Method).str("path", c.url.Path).int("status", int64(x.Status)).
		int("tries", int64(pk.tries)).dur("dur", d).strIf("caller", st.ownID).
		int("retries", int64(max(pk.tries-1, 0))).str("authority", c.view.Host).
		strIf("request_id", c.requestID).strIf("trace_id", c.traceID).
		int("bytes_in", x.BytesIn).int("bytes_out", x.BytesOut).send(o.p)
	if o.p.tapping() {
		// The event outlives the buffers the views are of.
		o.p.tapOutboundView(tapView{method: c.view.Method, authority: strings.Clone(c.view.Host), path: strings.Clone(c.url.Path),
			status: x.Status, reqBytes: c.view.ContentLength, respBytes: x.BytesOut}, st.service, strings.Clone(pk.addr), pk, c.start, d)
	}
}

// tapOutboundView is tapOutbound for a request seen as v.
func (p *Proxy) tapOutboundView(v tapView, service, endpoint string, pk *picked, start time.Time, d time.Duration) {
	now := time.Now()
	ev := &meshapi.TapEvent{
		UnixNano: start.UnixNano(), Callee: service, UpstreamInstance: endpoint,
		Method: v.method, Authority: v.authority, Path: v.path, Status: uint32(v.status),
		LatencyUs: d.Microseconds(), RequestBytes: v.reqBytes, ResponseBytes: v.respBytes, Tries: uint32(pk.tries),
	}
	if c := p.creds.Load(); c != nil {
		ev.Caller = c.ID.String()
	}
	if pk.route != nil {
		ev.Route = pk.route.name
	}
	if ev.TapIds = p.tap.match(ev, "", now); ev.TapIds != nil {
		p.tap.emit(ev, now)
	}
}

// Idle notes the connection waiting for a request (or no longer), and
// refuses to wait once the listener is closing.
func (c *outConn) Idle(idle bool) bool { return c.o.idleBytes.idle(c.conn, idle) }

// Interface guards.
var (
	_ h1.Hook           = (*outConn)(nil)
	_ h1.Upstreams      = (*outConn)(nil)
	_ h1.UpstreamFailer = (*outConn)(nil)
	_ h1.Idler          = (*outConn)(nil)
)
