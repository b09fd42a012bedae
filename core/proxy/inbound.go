package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/authz"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/guard"
	"github.com/weftmesh/weft/core/proxy/h1pool"
	"github.com/weftmesh/weft/core/proxy/h2cork"
	"github.com/weftmesh/weft/core/proxy/jwtauth"
	"github.com/weftmesh/weft/core/proxy/ratelimit"
	"github.com/weftmesh/weft/core/proxy/tracing"
	"github.com/weftmesh/weft/core/refusals"
	"github.com/weftmesh/weft/core/spiffe"
)

// inbound terminates mTLS from other sidecars, authorizes the caller and
// forwards to the local application.
type inbound struct {
	p     *Proxy
	proto meshapi.Protocol
	st    atomic.Pointer[inboundState]
	tls   *tls.Config
	conns connSet

	// shield is the listener's defences (core/protect); srvKey what of
	// them its server fixed at start.
	shield *protect.Shield
	srvKey string

	perCallerMu sync.Mutex
	perCaller   map[string]int // open connections by calling service
	// HTTP protocols only:
	http *httpServer
	rp   *httputil.ReverseProxy
	app  *http.Transport
	h1   *h1pool.Pool // PROTOCOL_HTTP: to the app, falling back to app
	// h2grpc serves a GRPC inbound's HTTP/2 connections (x/net/http2 on
	// an h2cork'd *tls.Conn: net/http's server needs the *tls.Conn
	// itself) with http's settings and handler; h2drain is a server with
	// no listener whose Shutdown sends them GOAWAY. nil for other
	// protocols.
	h2grpc  *http2.Server
	h2drain *http.Server
	// bytes: HTTP/1.1 connections go to the byte-level engine first
	// (inbound_bytes.go); idleBytes are its connections waiting for a
	// request, closed at shutdown.
	bytes     bool
	idleBytes idleSet
}

// inboundState is what a config change swaps into a running inbound
// listener.
type inboundState struct {
	service                   string // this instance's service: the destination of every call
	ownID                     string
	appAddr                   string
	authz                     *authz.Rules // with each rule's L7 permissions
	limits                    []*ratelimit.Limiter
	connMax, connMaxPerCaller int
	inputs                    ruleInputs        // what the L7 rules read
	jwt                       *jwtauth.Verifier // end-user tokens (jwt.go); nil: none
	forwarders                map[string]bool   // callers whose X-Forwarded-For and -Proto the app gets
}

type callerKey struct{}

func (p *Proxy) newInbound(sp spec, addr net.Addr) *inbound {
	in := &inbound{p: p, proto: sp.proto, srvKey: sp.prot.ServerKey()}
	in.shield = p.newShield(KeyInbound, sp.prot, true)
	in.update(sp)
	if sp.proto == meshapi.Protocol_PROTOCOL_TCP {
		in.tls = p.serverTLS(nil)
		return in
	}
	in.tls = p.serverTLS([]string{"h2", "http/1.1"})
	in.app = appTransport(sp.proto, p.opts.DialTimeout)
	var toApp http.RoundTripper = in.app
	if sp.proto == meshapi.Protocol_PROTOCOL_HTTP {
		in.h1 = h1pool.New(dialApp(p.opts.DialTimeout), in.app, 64, 90*time.Second, nil)
		toApp = in.h1
		in.bytes = p.opts.HTTP1Engine == HTTP1Bytes
	}
	in.rp = &httputil.ReverseProxy{
		Rewrite:        in.rewrite,
		Transport:      toApp,
		FlushInterval:  0, // at once for bodies of unknown length (streams, gRPC)
		BufferPool:     copyBuffers,
		ModifyResponse: in.modifyResponse,
		ErrorHandler:   in.proxyError,
		ErrorLog:       p.errorLog,
	}
	in.http = startHTTP(addr, http.HandlerFunc(in.serveHTTP), protocols(true, true, false), in.connContext, p.errorLog, in.shield)
	if sp.proto == meshapi.Protocol_PROTOCOL_GRPC {
		in.h2grpc = &http2.Server{IdleTimeout: in.http.srv.IdleTimeout} // the shield's, as net/http's has
		in.h2drain = &http.Server{}
		// Only for the graceful shutdown it registers; the listener-less
		// h2drain never serves.
		if err := http2.ConfigureServer(in.h2drain, in.h2grpc); err != nil {
			p.log.Warn("inbound: gRPC calls keep net/http's HTTP/2 server", "err", err)
			in.h2grpc = nil
		}
	}
	return in
}

// appTransport reaches the local application: HTTP/1.1 for PROTOCOL_HTTP,
// HTTP/2 cleartext (prior knowledge) for HTTP2 and GRPC.
func appTransport(p meshapi.Protocol, dialTimeout time.Duration) *http.Transport {
	dial := dialApp(dialTimeout)
	if p == meshapi.Protocol_PROTOCOL_GRPC {
		// A gRPC call's request frames leave in one write (h2cork).
		plain := dial
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := plain(ctx, addr)
			if err != nil {
				return nil, err
			}
			return h2cork.New(c, h2cork.Client, 0), nil
		}
	}
	t := &http.Transport{
		DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) },
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if p == meshapi.Protocol_PROTOCOL_HTTP {
		t.Protocols = protocols(true, false, false)
	} else {
		t.Protocols = protocols(false, false, true)
	}
	return t
}

// dialApp dials the local application; its errors are appDialErrors.
func dialApp(timeout time.Duration) func(ctx context.Context, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, &appDialError{addr: addr, err: err}
		}
		return c, nil
	}
}

func (in *inbound) key() string                { return KeyInbound }
func (in *inbound) idleTimeout() time.Duration { return 0 }
func (in *inbound) serverKey() string          { return in.srvKey }
func (in *inbound) protocol() meshapi.Protocol { return in.proto }

func (in *inbound) update(sp spec) {
	if in.shield != nil {
		in.shield.Set(sp.prot)
	}
	own := sp.cfg.GetSpiffeId()
	if own == "" {
		if c := in.p.creds.Load(); c != nil {
			own = c.ID.String()
		}
	}
	var prevLimits []*ratelimit.Limiter
	if old := in.st.Load(); old != nil {
		prevLimits = old.limits
	}
	limits, _ := ratelimit.Compile(sp.in.GetRateLimits(), prevLimits) // checked by listenerSpecs
	in.p.budgets.set(limits, time.Now())
	az := authz.New(sp.in.GetAuthz(), sp.cfg, own)
	forwarders := map[string]bool{}
	for _, id := range sp.in.GetForwardingCallers() {
		forwarders[id] = true
	}
	in.st.Store(&inboundState{
		forwarders:       forwarders,
		limits:           limits,
		connMax:          int(sp.in.GetConnectionLimit().GetMax()),
		connMaxPerCaller: int(sp.in.GetConnectionLimit().GetMaxPerCaller()),
		service:          sp.cfg.GetService(),
		ownID:            own,
		appAddr:          hostPort(appHost(sp.in.GetAppAddress()), sp.in.GetAppPort()),
		authz:            az,
		inputs:           collectRuleInputs(az, limits),
		jwt:              sp.jwt,
	})
}

func appHost(h string) string {
	if h == "" {
		return "127.0.0.1"
	}
	return h
}

func (in *inbound) handle(raw net.Conn) bool {
	if in.http != nil && in.http.ln.closedNow() {
		return false
	}
	// Blocked addresses and the per-source cap, before any TLS work.
	admitted, ok := in.shield.Admit(raw)
	if !ok {
		return true
	}
	tc := track(admitted, &in.conns)
	st := in.st.Load()
	if st.connMax > 0 && in.conns.len() > st.connMax {
		in.p.metrics.limited.WithLabelValues("", "connection_limit").Inc()
		in.p.note(protect.SourceIP(raw.RemoteAddr().String()), guard.ConnLimited)
		in.p.log.Warn("inbound: refused connection from "+raw.RemoteAddr().String()+": connections open at the limit", "open", in.conns.len()-1, "limit", st.connMax)
		tc.Close()
		return true
	}
	conn := tls.Server(tc, in.tls)
	// The handshake is bounded by the header timeout too: a client that
	// trickles its handshake is a slowloris like one that trickles headers.
	ctx, cancel := context.WithTimeout(context.Background(), min(in.p.opts.HandshakeTimeout, in.shield.Settings().ReadHeaderTimeout))
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		// A connection closed before a byte (a TCP health check) is
		// counted, never held against its source.
		if in.p.refused.Refused(raw.RemoteAddr().String(), err) != refusals.Closed {
			in.p.note(protect.SourceIP(raw.RemoteAddr().String()), guard.Handshake)
		}
		conn.Close()
		return true
	}
	caller, err := spiffe.FromCert(conn.ConnectionState().PeerCertificates[0])
	if err != nil { // verified in the handshake; cannot happen
		in.p.log.Warn("inbound: refused connection from "+raw.RemoteAddr().String(), "err", err)
		conn.Close()
		return true
	}
	if in.p.guard.Blocked(callerSource(caller)) {
		in.p.metrics.shielded.WithLabelValues(KeyInbound, protect.ReasonBlocked).Inc()
		conn.Close()
		return true
	}
	tc.setPeer(in.p.metrics, dirInbound, caller.Service, in.p.stats.caller(caller))
	if st.connMaxPerCaller > 0 {
		if n := in.callerConns(caller.Service, 1); n > st.connMaxPerCaller {
			in.callerConns(caller.Service, -1)
			in.p.metrics.limited.WithLabelValues(caller.Service, "connection_limit").Inc()
			in.p.note(callerSource(caller), guard.ConnLimited)
			in.p.log.Warn("inbound: refused connection from "+raw.RemoteAddr().String()+": connections from the caller open at the limit", "caller", caller.String(), "service", caller.Service, "open", n-1, "limit", st.connMaxPerCaller)
			conn.Close()
			return true
		}
		tc.onClose = func() { in.callerConns(caller.Service, -1) }
	}
	if in.bytes && conn.ConnectionState().NegotiatedProtocol != "h2" {
		in.serveBytes(conn, caller)
		return true
	}
	if in.h2grpc != nil && conn.ConnectionState().NegotiatedProtocol == "h2" {
		if in.http.ln.closedNow() {
			conn.Close()
			return true
		}
		go in.serveGRPC(conn)
		return true
	}
	if in.http != nil {
		if !in.http.ln.push(conn) {
			conn.Close()
		}
		return true
	}
	in.serveTCP(conn, caller)
	return true
}

// serveGRPC serves an HTTP/2 connection of a GRPC inbound as in.http
// would, through h2cork so that a call's response HEADERS, DATA and
// trailers leave in one write. It returns when the connection closes.
func (in *inbound) serveGRPC(conn *tls.Conn) {
	in.h2grpc.ServeConn(h2cork.New(conn, h2cork.Server, 0), &http2.ServeConnOpts{
		Context:    in.connContext(context.Background(), conn),
		BaseConfig: in.http.srv,
		Handler:    in.http.srv.Handler,
	})
}

func (in *inbound) serveTCP(conn net.Conn, caller spiffe.Identity) {
	start := time.Now()
	st := in.st.Load()
	if ok, why := st.authorize(caller); !ok {
		in.p.metrics.denied.WithLabelValues(caller.Service).Inc()
		in.p.note(callerSource(caller), guard.Denied)
		in.p.stats.denied(in.p.stats.caller(caller), caller, "", "", why)
		in.p.accessLine("access", "inbound", "DENIED").str("caller", caller.String()).str("dest", st.service).
			str("proto", "tcp").str("reason", why).send(in.p)
		conn.Close()
		return
	}
	if down, why := in.p.health.down(); down {
		in.p.accessLine("access", "inbound").str("caller", caller.String()).str("dest", st.service).
			str("proto", "tcp").str("error", "the application is down: "+why).send(in.p)
		conn.Close()
		return
	}
	app, err := net.DialTimeout("tcp", st.appAddr, in.p.opts.DialTimeout)
	if err != nil {
		in.p.health.refused(st.appAddr, fmt.Sprintf("connecting to the application at %s: %v", st.appAddr, err))
		in.p.accessLine("access", "inbound").str("caller", caller.String()).str("dest", st.service).
			str("proto", "tcp").str("error", fmt.Sprintf("dialing the application at %s: %v", st.appAddr, err)).send(in.p)
		conn.Close()
		return
	}
	pipe(conn, app, func(rx, tx int64) {
		in.p.accessLine("access", "inbound").str("caller", caller.String()).str("dest", st.service).
			str("proto", "tcp").int("rx", rx).int("tx", tx).dur("dur", time.Since(start)).send(in.p)
	})
}

// callerConns adds delta to the open connections of a calling service and
// returns the new count.
func (in *inbound) callerConns(svc string, delta int) int {
	in.perCallerMu.Lock()
	defer in.perCallerMu.Unlock()
	if in.perCaller == nil {
		in.perCaller = map[string]int{}
	}
	in.perCaller[svc] += delta
	n := in.perCaller[svc]
	if n <= 0 {
		delete(in.perCaller, svc)
	}
	return n
}

func (in *inbound) connContext(ctx context.Context, c net.Conn) context.Context {
	if h, ok := c.(*handedConn); ok { // from the byte-level engine
		c = h.tls
	}
	if tc, ok := c.(*tls.Conn); ok {
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			if id, err := spiffe.FromCert(certs[0]); err == nil {
				return context.WithValue(ctx, callerKey{}, id)
			}
		}
	}
	return ctx
}

func (in *inbound) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := in.st.Load()
	caller, _ := r.Context().Value(callerKey{}).(spiffe.Identity)
	rec := &statusWriter{ResponseWriter: w}
	var denied string         // why authorization refused it (stats, tap)
	ensureRequestID(r.Header) // requestid.go: to the app, and in both lines
	rec.countBody(r)
	span := in.p.tracer.Inbound(r, caller) // nil when off; the app gets its traceparent
	defer func() {
		d := time.Since(start)
		if span != nil {
			span.End(tracing.Outcome{Status: rec.status(), GRPCStatus: rec.grpcStatus()})
		}
		in.p.metrics.request(dirInbound, caller.Service, "", "", rec.status(), d)
		in.p.stats.inbound(caller, rec, denied != "", d)
		in.p.accessLine("access", "inbound").str("caller", caller.String()).str("dest", st.service).
			str("method", r.Method).str("path", r.URL.Path).int("status", int64(rec.status())).
			grpcStatus(rec).dur("dur", d).request(r, rec).strIf("reason", rec.reason).send(in.p)
		if in.p.tapping() {
			in.p.tapInbound(r, caller, st.service, rec, start, d, denied)
		}
	}()
	if bad := canon.Canonicalize(r); bad != nil {
		in.refuse(rec, r, st, caller, bad)
		return
	}
	if caller.Service == "" {
		rec.reason = "weft: the caller's identity is unknown"
		markDenied(rec)
		http.Error(rec, rec.reason, http.StatusForbidden)
		return
	}
	query, bad := st.inputs.check(r, st.service)
	if bad != nil {
		in.refuse(rec, r, st, caller, bad)
		return
	}
	stripOwnedHeaders(r.Header)
	dropH2CUpgrade(r.Header)
	tokens, refused := in.p.checkJWT(rec, r, st.jwt, st.service)
	if refused != "" {
		rec.reason, denied = refused, refused
		in.p.accessLine("access", "inbound", "UNAUTHENTICATED").str("caller", caller.String()).str("dest", st.service).
			str("method", r.Method).str("path", r.URL.Path).str("reason", refused).request(r, nil).send(in.p)
		return
	}
	if ok, why, needs := st.authz.AuthorizeRequestJWT(caller, r, query, tokens.Claims); !ok {
		if needs != "" {
			markDenied(rec)
			in.p.unauthenticated(rec, r, st.service, &jwtauth.Failure{Provider: needs, Reason: jwtauth.ReasonMissing, Detail: why})
			rec.reason, denied = why, why
			in.p.accessLine("access", "inbound", "UNAUTHENTICATED").str("caller", caller.String()).str("dest", st.service).
				str("method", r.Method).str("path", r.URL.Path).str("reason", why).request(r, nil).send(in.p)
			return
		}
		in.p.metrics.denied.WithLabelValues(caller.Service).Inc()
		in.p.note(callerSource(caller), guard.Denied)
		in.p.stats.denied(in.p.stats.caller(caller), caller, r.Method, r.URL.Path, why)
		denied = why
		in.p.accessLine("access", "inbound", "DENIED").str("caller", caller.String()).str("dest", st.service).
			str("method", r.Method).str("path", r.URL.Path).str("reason", why).request(r, nil).send(in.p)
		rec.reason = why
		markDenied(rec)
		if isGRPC(r) {
			writeGRPCError(rec, grpcPermissionDenied, why)
			return
		}
		http.Error(rec, why, http.StatusForbidden)
		return
	}
	for _, l := range st.limits {
		if ok, wait := l.AllowSubject(caller.Service, tokens.Subject(l.JWTProvider()), r, time.Now()); !ok {
			in.p.metrics.limited.WithLabelValues(caller.Service, l.Name()).Inc()
			if l.PerSourceIP() {
				in.p.note(protect.SourceIP(r.RemoteAddr), guard.RateLimited)
			} else {
				in.p.note(callerSource(caller), guard.RateLimited)
			}
			msg := fmt.Sprintf("weft: rate limit %q of %s exceeded for %s; retry in %s", l.Name(), st.service, caller.Service, wait.Round(time.Millisecond))
			rec.reason = msg
			rec.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
			if isGRPC(r) {
				writeGRPCError(rec, grpcResourceExhausted, msg)
				return
			}
			http.Error(rec, msg, http.StatusTooManyRequests)
			return
		}
	}
	if down, why := in.p.health.down(); down {
		in.p.metrics.unavailable.Inc()
		writeUnavailable(rec, r, fmt.Sprintf("weft: the application of %s is down (its health check: %s); try another instance", st.service, why))
		return
	}
	rec.reqBody = r.Body // for drainForReplay
	// What rewrite needs of st goes in the request itself: a context
	// value would cost a copy of the request.
	r.URL.Scheme, r.URL.Host = "http", st.appAddr
	id := caller.String()
	// Only a gateway tells who its client is, and only in the two
	// headers it sets.
	var relayed [][]string
	if st.forwarders[id] {
		for _, k := range relayedForwarded {
			relayed = append(relayed, r.Header[k])
		}
	}
	stripForwarded(r.Header)
	for i, v := range relayed {
		if v != nil {
			r.Header[relayedForwarded[i]] = v
		}
	}
	r.Header.Set(headerCaller, id)
	r.Header.Set(headerXFCC, "By="+st.ownID+";URI="+id)
	in.rp.ServeHTTP(rec, r)
}

// refuse answers a request the proxy will not route or authorize with 400
// and why.
func (in *inbound) refuse(w http.ResponseWriter, r *http.Request, st *inboundState, caller spiffe.Identity, bad *canon.BadRequest) {
	if caller.Service != "" {
		in.p.note(callerSource(caller), guard.BadRequest)
	}
	in.p.accessLine("access", "inbound", "REFUSED").str("caller", caller.String()).str("dest", st.service).
		str("method", r.Method).str("target", r.RequestURI).str("reason", bad.Error()).request(r, nil).send(in.p)
	http.Error(w, "weft: bad request: "+bad.Error(), http.StatusBadRequest)
}

// rewrite sends the request to the app: serveHTTP has set the app's
// address and the caller's identity headers on the incoming request. The
// reverse proxy has dropped the hop-by-hop headers from the outgoing one,
// and with them every header the client named in Connection: the identity
// headers are copied again after that, so that a client cannot have them
// dropped ("Connection: X-Weft-Caller").
func (in *inbound) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.Host = pr.In.Host
	for _, k := range ownedHeaders {
		if v, ok := pr.In.Header[k]; ok {
			pr.Out.Header[k] = v
		}
	}
	// The reverse proxy dropped X-Forwarded-*; a gateway's are still on
	// the incoming request (serveHTTP removed anyone else's).
	for _, k := range relayedForwarded {
		if v, ok := pr.In.Header[k]; ok {
			pr.Out.Header[k] = v
		}
	}
}

// modifyResponse takes the signal's header off an application's
// response, notes that the app answered, and moves a gRPC status to the
// trailers (grpcTrailersOnly).
func (in *inbound) modifyResponse(resp *http.Response) error {
	stripSignal(resp)
	in.p.health.answered()
	return grpcTrailersOnly(resp)
}

// proxyError answers a request the app did not answer. When the request
// never reached the app (it refused the connection, or a pooled
// connection to it took no byte of the request), or the app closed
// the connection before any byte of a response to a request that is safe
// to repeat, the answer is the retryable signal, and a refusal takes the
// app down at once; otherwise 502 (gRPC UNAVAILABLE).
func (in *inbound) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	msg := fmt.Sprintf("weft: calling the application of %s at %s: %v; is it running and listening there?", in.st.Load().service, r.URL.Host, err)
	in.p.log.Warn("inbound: calling the application", "err", msg)
	var de *appDialError
	switch {
	case r.Context().Err() != nil: // the caller went away
	case errors.As(err, &de):
		in.p.health.refused(de.addr, fmt.Sprintf("connecting to the application at %s: %v", de.addr, de.err))
		in.p.metrics.unavailable.Inc()
		writeUnavailable(w, r, msg)
		return
	case safeToRepeat(r) || errors.Is(err, h1pool.ErrNotSent):
		// The app may have run it and it may run again, or no byte
		// of it reached the app (a pooled connection the app had
		// reset): another instance may take it.
		in.p.metrics.unavailable.Inc()
		writeUnavailable(w, r, msg)
		return
	}
	if isGRPC(r) {
		writeGRPCError(w, grpcUnavailable, msg)
		return
	}
	http.Error(w, msg, http.StatusBadGateway)
}

func (in *inbound) shutdown(ctx context.Context) {
	in.idleBytes.closeAll()
	if in.http != nil {
		in.http.shutdown(ctx)
	}
	if in.h2drain != nil {
		in.h2drain.Shutdown(ctx) // GOAWAY on serveGRPC's connections
	}
	if !in.conns.wait(ctx) {
		in.conns.closeAll()
	}
	if in.app != nil {
		in.app.CloseIdleConnections()
	}
	if in.h1 != nil {
		in.h1.Close()
	}
}
