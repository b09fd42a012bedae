package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/guard"
	"github.com/weftmesh/weft/core/proxy/h1"
	"github.com/weftmesh/weft/core/proxy/ratelimit"
)

// The gateway's byte-level HTTP/1.1 engine (WEFT_HTTP1_ENGINE=bytes, as
// the sidecar's listeners: inbound_bytes.go, outbound_bytes.go). An
// HTTP or HTTPS gateway listener serves an outside client's HTTP/1.1
// connection (over TLS: ALPN http/1.1 or none; h2 never comes here) on
// the bytes it read, with gwConn as the h1.Hook:
//
//   - the gateway's own steps of serveHTTP, in its order: load shedding
//     (the listener's shield), the Host put in canonical form (400), the
//     server names of an HTTPS listener (421), the gateway service's
//     rate limits (429, Retry-After; per source IP by the connection's
//     address), the route by host and matches (404), the refusals
//     logged as the net/http path logs them;
//   - the client address headers removed in any spelling
//     (isClientAddressHeader), X-Forwarded-For and X-Forwarded-Proto set
//     from the connection, as setForwarded does;
//   - then the route's outbound as the sidecar's bytes outbound serves
//     its app (outConn: the upstream's routes, splits, balancing, breaker,
//     outlier detection, retries, timeouts, pooled mTLS, request ID,
//     metrics, access log, tap), one outConn per route's outbound per
//     client connection;
//   - a callee sidecar's own refusal (HeaderDenied) answered with its
//     status and headers but a generic body, as gatewayWriter does.
//
// A request the engine does not serve is handed, with its connection
// and the bytes read, to the listener's net/http server (which then
// serves the connection to its end), so that behaviour never changes
// with the engine: the cases outbound_bytes.go hands off (chunked and
// large bodies, upgrades and WebSocket, h2c, gRPC's content type,
// tracing, routes with faults, mirrors, header changes or stream
// timeouts, upstreams that are not PROTOCOL_HTTP), and end-user JWT
// checks (a gateway whose service has a jwt block is served by net/http
// throughout). A handed-off TLS connection keeps its TLS state for
// serveHTTP (gatewayConnContext).

// gwTLSKey marks, in a request's context, a TLS connection handed from
// the byte-level engine to the listener's net/http server (whose
// requests then have no r.TLS).
type gwTLSKey struct{}

// gatewayConnContext marks the connections the byte-level engine handed
// over on TLS.
func gatewayConnContext(ctx context.Context, c net.Conn) context.Context {
	if h, ok := c.(*handedConn); ok && h.tls != nil {
		return context.WithValue(ctx, gwTLSKey{}, h.tls)
	}
	return ctx
}

// requestTLS reports whether r came over TLS: its own state, or its
// connection's before the hand-off.
func requestTLS(r *http.Request) bool {
	return r.TLS != nil || r.Context().Value(gwTLSKey{}) != nil
}

// bytesServes reports whether the byte-level engine serves the listener's
// connections now (a gateway with end-user tokens to check, or with
// tracing on, is served by net/http).
func (g *gatewayListener) bytesServes(st *gatewayState) bool {
	return g.bytes && st.jwt == nil && !g.p.tracer.Enabled()
}

// serveBytes serves a client's HTTP/1.1 connection (tc its TLS, nil on
// an HTTP listener) with the byte-level engine, and hands it to the
// net/http server when a request needs that.
func (g *gatewayListener) serveBytes(conn net.Conn, tc *tls.Conn) {
	c := &gwConn{g: g, conn: conn, remote: conn.RemoteAddr().String(), tls: tc != nil}
	c.client = []byte(protect.SourceIP(c.remote))
	c.proto = []byte("http")
	if c.tls {
		c.proto = []byte("https")
	}
	c.view.URL = &c.url
	c.view.RemoteAddr = c.remote
	c.view.Proto, c.view.ProtoMajor, c.view.ProtoMinor = "HTTP/1.1", 1, 1
	s := g.shield.Settings()
	c.fwd = h1.Forwarder{
		Limits:            h1.Limits{MaxHeaderBytes: orInt(s.MaxHeaderBytes, gatewayMaxHeaderBytes), MaxHeaderCount: s.MaxHeaderCount, MaxBodyBytes: s.MaxRequestBodyBytes},
		ReadHeaderTimeout: orDur(s.ReadHeaderTimeout, gatewayReadHeader),
		IdleTimeout:       orDur(s.IdleTimeout, 5*time.Minute),
		HandOffPrior:      true,
	}
	rest, err := c.fwd.ServeConnHook(conn, c)
	if !errors.Is(err, h1.ErrHandOff) {
		return
	}
	if !g.http.ln.push(&handedConn{Conn: conn, tls: tc, rest: rest}) {
		conn.Close()
	}
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orDur(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// gwConn is the h1.Hook (and h1.Upstreams) of one client connection to
// a gateway listener: the gateway's checks, then the chosen route's
// outConn for the rest of the exchange.
type gwConn struct {
	g      *gatewayListener
	conn   net.Conn
	fwd    h1.Forwarder
	remote string
	tls    bool
	client []byte // X-Forwarded-For: the client's address
	proto  []byte // X-Forwarded-Proto

	view    http.Request // what routes and limits match
	url     url.URL
	outs    []*outConn // by route outbound, made on first use
	cur     *outConn   // the outbound serving the current exchange (Release comes after Done)
	routed  bool       // cur saw the current exchange: Done is its
	entered bool       // the listener's shield counts it in flight
	set     [4]h1.Field
}

// maxConnOuts bounds the outConns a connection keeps (routes' outbounds
// replaced by configuration changes are dropped past it).
const maxConnOuts = 16

// outConn is the connection's outConn for the route outbound o.
func (c *gwConn) outConn(o *outbound) *outConn {
	for _, oc := range c.outs {
		if oc.o == o {
			return oc
		}
	}
	if len(c.outs) >= maxConnOuts {
		c.outs = c.outs[:0]
	}
	oc := &outConn{o: o, conn: c.conn, endRetry: noop, gw: c}
	oc.view.URL = &oc.url
	oc.view.RemoteAddr = c.remote
	oc.view.Proto, oc.view.ProtoMajor, oc.view.ProtoMinor = "HTTP/1.1", 1, 1
	c.outs = append(c.outs, oc)
	return oc
}

// Request runs the gateway's steps on the client's request and hands it
// to its route's outConn; it hands the connection off before acting on
// a request that the byte path does not serve.
func (c *gwConn) Request(x *h1.Exchange) h1.Verdict {
	g, r := c.g, x.Req
	st := g.st.Load()
	c.cur, c.routed = nil, false
	if !g.bytesServes(st) || r.Upgrade || r.Chunked() || r.ContentLength > h1.ReplayMax ||
		hasPrefixField(r, "Content-Type", "application/grpc") {
		return h1.HandOff
	}
	host, why := requestHostBytes(r.Host)
	misdirected := why == "" && c.tls && len(st.sni) > 0 && !hostIn(host, st.sni)
	v := &c.view
	v.Method = methodString(r.Method)
	v.Host = bstr(r.Host)
	c.url = url.URL{RawQuery: r.Query}
	canon.SetPath(&c.url, r.Path)
	v.ContentLength = r.ContentLength
	v.Header = nil
	if st.readsHeaders {
		// Routes or limits read headers: they see them as net/http's
		// server gives them (no Host). This allocates, on such gateways
		// only.
		v.Header = make(http.Header, len(r.Fields))
		for _, f := range r.Fields {
			k := http.CanonicalHeaderKey(string(f.Name))
			if k == "Host" {
				continue
			}
			v.Header[k] = append(v.Header[k], string(f.Value))
		}
	}
	// Decide the hand-off first: nothing is counted or taken yet.
	var rt *gatewayRoute
	var oc *outConn
	var ost *outboundState
	var timeout time.Duration
	if why == "" && !misdirected {
		if rt = st.route(host, v); rt != nil {
			oc = c.outConn(rt.out)
			var ok bool
			if ost, timeout, ok = oc.prepare(r); !ok {
				return h1.HandOff
			}
		}
	}
	if !g.shield.Enter() {
		g.p.metrics.shielded.WithLabelValues(g.key(), protect.ReasonShed).Inc()
		x.Close = true
		c.refuse(x, http.StatusServiceUnavailable, fmt.Sprintf("weft: the %s listener is saturated (%d requests in flight); retry in a second", g.key(), g.shield.Settings().MaxInFlight),
			"Retry-After", "1", "X-Weft-Overloaded", "true")
		return h1.Answered
	}
	c.entered = true
	switch {
	case why != "":
		c.refuse(x, http.StatusBadRequest, "weft gateway: bad request: "+why, "", "", "", "")
		return h1.Answered
	case misdirected:
		c.refuse(x, http.StatusMisdirectedRequest, fmt.Sprintf("weft gateway: host %q is not one listener %s answers for (tls sni: %s); connect with that host as the TLS server name", host, st.listener, strings.Join(st.sni, ", ")), "", "", "", "")
		return h1.Answered
	}
	for _, l := range st.limits {
		ok, wait := l.AllowSubject("", "", v, time.Now())
		if ok {
			continue
		}
		g.p.metrics.limited.WithLabelValues("", l.Name()).Inc()
		g.p.note(protect.SourceKey(c.remote, gatewayIPv6Prefix), guard.RateLimited)
		c.refuse(x, http.StatusTooManyRequests, fmt.Sprintf("weft gateway: rate limit %q of %s exceeded; retry in %s", l.Name(), st.service, wait.Round(time.Millisecond)),
			"Retry-After", ratelimit.RetryAfter(wait), "", "")
		return h1.Answered
	}
	if rt == nil {
		c.refuse(x, http.StatusNotFound, fmt.Sprintf("weft gateway: no route of listener %s takes host %q and path %q; check the host name and path, or the gateway's routes", st.listener, host, c.url.Path), "", "", "", "")
		return h1.Answered
	}
	c.cur, c.routed = oc, true
	verdict := oc.begin(x, ost, timeout)
	if verdict == h1.Forward {
		x.Set = append(x.Set, h1.Field{Name: nameForwardedFor, Value: c.client},
			h1.Field{Name: nameForwardedProto, Value: c.proto})
	}
	return verdict
}

// The fields a gateway sets (not literals: those would be allocated per
// request).
var (
	nameForwardedFor   = []byte("X-Forwarded-For")
	nameForwardedProto = []byte("X-Forwarded-Proto")
)

// refuse answers a request the gateway will not route, as
// gatewayListener.refuse does, with up to two more header fields.
func (c *gwConn) refuse(x *h1.Exchange, code int, msg, k1, v1, k2, v2 string) {
	f := append(c.set[:0], h1.Field{Name: []byte("Content-Type"), Value: []byte("text/plain; charset=utf-8")},
		h1.Field{Name: []byte("X-Content-Type-Options"), Value: []byte("nosniff")})
	for _, kv := range [2][2]string{{k1, v1}, {k2, v2}} {
		if kv[0] != "" {
			f = append(f, h1.Field{Name: []byte(kv[0]), Value: []byte(kv[1])})
		}
	}
	x.Answer(code, f, errorBody(msg))
	host := string(x.Req.Host)
	if len(host) > 64 {
		host = host[:64] + "..."
	}
	g := c.g
	g.p.accessLine("access", "gateway", "REFUSED").str("listener", g.name).str("host", host).str("method", c.view.Method).
		str("path", c.url.Path).int("status", int64(code)).str("reason", msg).send(g.p)
}

// Remove drops the client address headers in any spelling (the route's
// outbound sets X-Forwarded-For and -Proto itself).
func (c *gwConn) Remove(name []byte) bool { return isClientAddressHeader(bstr(name)) }

// Done records the exchange through the route's outConn, or a head the
// engine refused; and gives the shield's slot back.
func (c *gwConn) Done(x *h1.Exchange) {
	g := c.g
	if c.routed {
		c.cur.Done(x)
		c.routed = false
	} else if x.Refusal != "" {
		switch x.Status {
		case http.StatusRequestHeaderFieldsTooLarge, http.StatusRequestEntityTooLarge:
			reason := protect.ReasonHeaderCount
			if x.Status == http.StatusRequestEntityTooLarge {
				reason = protect.ReasonBodyTooLarge
			}
			g.p.metrics.shielded.WithLabelValues(g.key(), reason).Inc()
			g.p.note(protect.SourceKey(c.remote, gatewayIPv6Prefix), guard.BadRequest)
		}
		g.p.accessLine("access", "gateway", "REFUSED").str("listener", g.name).str("method", string(x.Req.Method)).
			str("target", string(x.Req.Target)).int("status", int64(x.Status)).str("reason", x.Refusal).send(g.p)
	}
	if c.entered {
		g.shield.Leave()
		c.entered = false
	}
}

// errNoRoute: the engine asked for an upstream of an exchange no route
// took (it answers those itself; never seen).
var errNoRoute = errors.New("the gateway routed no request")

func (c *gwConn) Upstream(x *h1.Exchange) (net.Conn, bool, error) {
	if c.cur == nil {
		return nil, false, errNoRoute
	}
	return c.cur.Upstream(x)
}

func (c *gwConn) Again(x *h1.Exchange, t *h1.Try) bool {
	return c.cur != nil && c.cur.Again(x, t)
}

func (c *gwConn) Release(x *h1.Exchange, conn net.Conn, reuse bool) {
	if c.cur != nil {
		c.cur.Release(x, conn, reuse)
	} else {
		conn.Close()
	}
}

func (c *gwConn) UpstreamFailed(x *h1.Exchange, err error) {
	if c.cur != nil {
		c.cur.UpstreamFailed(x, err)
		return
	}
	x.Answer(http.StatusBadGateway, nil, errorBody("weft gateway: "+err.Error()))
}

// Idle notes the connection waiting for a request (or no longer), and
// refuses to wait once the listener is closing.
func (c *gwConn) Idle(idle bool) bool { return c.g.idleBytes.idle(c.conn, idle) }

// requestHostBytes is requestHost on the head's bytes, without a copy
// when the host has no port and no upper case (net.SplitHostPort's error
// for a host without a port allocates).
func requestHostBytes(b []byte) (string, string) {
	h := bstr(b)
	if strings.IndexByte(h, ':') >= 0 {
		return requestHost(h)
	}
	if len(h) > gatewayMaxHost+7 {
		return "", fmt.Sprintf("the Host header is %d bytes, longer than a host name and port", len(h))
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if len(h) > gatewayMaxHost {
		return "", fmt.Sprintf("the host is %d bytes, longer than a DNS name (%d)", len(h), gatewayMaxHost)
	}
	return h, ""
}

// Interface guards.
var (
	_ h1.Hook           = (*gwConn)(nil)
	_ h1.Upstreams      = (*gwConn)(nil)
	_ h1.UpstreamFailer = (*gwConn)(nil)
	_ h1.Idler          = (*gwConn)(nil)
)
