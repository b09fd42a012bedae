package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/balance"
	"github.com/weftmesh/weft/core/proxy/breaker"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/h1pool"
	"github.com/weftmesh/weft/core/proxy/h2cork"
	"github.com/weftmesh/weft/core/proxy/mirror"
	"github.com/weftmesh/weft/core/proxy/retry"
	"github.com/weftmesh/weft/core/proxy/tracing"
)

// maxAttempts bounds how many endpoints one connection or request tries
// when dialing fails.
const maxAttempts = 3

// errNoEndpoints means an upstream has no instance left to try.
var errNoEndpoints = errors.New("no healthy instances")

// errAppUnavailable is a try the callee's sidecar answered with the
// signal; when no other try follows, the caller gets 503 (gRPC
// UNAVAILABLE) too.
var errAppUnavailable = fmt.Errorf("its sidecar answered %s: %s (the application cannot take requests)", HeaderUnavailable, ValueUnavailableApp)

// outbound serves one upstream: the local app connects in plain TCP and
// the proxy carries each connection (TCP) or request (HTTP, HTTP2, gRPC)
// over mTLS to a sidecar of the upstream service.
type outbound struct {
	p     *Proxy
	name  string
	proto meshapi.Protocol
	st    atomic.Pointer[outboundState]
	conns connSet
	tls   *tls.Config // TCP: no ALPN
	// HTTP protocols only:
	http  *httpServer
	rp    *httputil.ReverseProxy
	mesh  *http.Transport // pooled HTTP/2 over mTLS to upstream sidecars
	mesh1 *http.Transport // HTTP/1.1 over mTLS, for upgrades (WebSocket)
	// meshGRPC carries GRPC upstreams' calls to sidecars (not to external
	// services): HTTP/2 over mTLS whose connections h2cork coalesces,
	// which it can as it writes to any net.Conn where mesh's HTTP/2 needs
	// a *tls.Conn. nil for other protocols.
	meshGRPC *http2.Transport
	// h1 carries PROTOCOL_HTTP upstreams' requests as HTTP/1.1 over mTLS
	// (nil for HTTP2 and GRPC, which go over mesh).
	h1   *h1pool.Pool
	idle time.Duration // as configured; 0: the defaults
	// shield is the listener's defences (core/protect); srvKey what of
	// them its server fixed at start.
	shield *protect.Shield
	srvKey string
	mirror *mirror.Sender
	// det runs outlier detection over the endpoints of the configuration
	// in force (its timer goroutine only while one asks for it); shutdown
	// closes it.
	det *balance.Detector
	// bytes: the app's HTTP/1.1 connections go to the byte-level engine
	// (outbound_bytes.go); idleBytes are its connections waiting for a
	// request, closed at shutdown.
	bytes     bool
	idleBytes idleSet
}

// outboundState is what a config change swaps into a running upstream
// listener.
type outboundState struct {
	service string
	wantID  string // the SPIFFE ID the upstream's sidecars must present
	eps     []*endpoint
	lb      balancer
	all     *pool    // every endpoint: requests no route takes
	routes  []*route // first match wins
	connect time.Duration
	breaker *breaker.Breaker
	det     *balance.Detector   // outlier detection (a no-op without configuration)
	hash    *meshapi.HashPolicy // consistent hashing: what to hash
	self    string              // this instance, for hashing on source identity
	ownID   string              // this instance's SPIFFE ID: the caller, in the access log
	request time.Duration       // for requests no route takes
	stream  time.Duration
	ext     *externalState // an external service (external.go); nil: a mesh service
	// readsHeaders: a route's matches or the hash policy read request
	// headers (the byte-level engine builds them only then).
	readsHeaders bool
}

type (
	outboundStateKey struct{}
	pickedKey        struct{}
)

// picked records how a request was routed and which endpoint served it.
type picked struct {
	addr    string
	route   *route // nil: no route took it
	pool    *pool
	tries   int
	rec     *retry.BodyRecorder // the request body, kept for retries and mirrors
	hasBody bool
}

func (p *Proxy) newOutbound(sp spec, addr net.Addr) *outbound {
	o := &outbound{p: p, name: sp.up.GetName(), proto: sp.proto, idle: idleOf(sp), srvKey: sp.prot.ServerKey()}
	o.shield = p.newShield(KeyUpstream(o.name), sp.prot, false)
	o.det = balance.NewDetector(balance.DetectorOptions{Notify: o.outlierEvent})
	o.update(sp)
	want := func() string { return o.st.Load().wantID }
	o.tls = p.clientTLS(want, nil)
	if sp.proto == meshapi.Protocol_PROTOCOL_TCP {
		return o
	}
	h2 := p.clientTLS(want, []string{"h2"})
	o.mesh = &http.Transport{
		Protocols: protocols(false, true, false),
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return o.dialUpstream(ctx, addr, h2, []string{"h2"})
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     idleOr(sp.up.GetTimeouts().GetIdle().AsDuration(), 90*time.Second),
		DisableCompression:  true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	if sp.proto == meshapi.Protocol_PROTOCOL_GRPC {
		o.meshGRPC = &http2.Transport{
			DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
				c, err := o.dialUpstream(ctx, addr, h2, []string{"h2"})
				if err != nil {
					return nil, err
				}
				return h2cork.New(c, h2cork.Client, 0), nil
			},
			IdleConnTimeout:    idleOr(sp.up.GetTimeouts().GetIdle().AsDuration(), 90*time.Second),
			DisableCompression: true,
			ReadIdleTimeout:    30 * time.Second,
			PingTimeout:        15 * time.Second,
		}
	}
	h1 := p.clientTLS(want, []string{"http/1.1"})
	o.mesh1 = &http.Transport{
		Protocols: protocols(true, false, false),
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return o.dialUpstream(ctx, addr, h1, []string{"http/1.1"})
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if sp.proto == meshapi.Protocol_PROTOCOL_HTTP {
		o.h1 = h1pool.New(func(ctx context.Context, addr string) (net.Conn, error) {
			return o.dialUpstream(ctx, addr, h1, []string{"http/1.1"})
		}, o.mesh1, 128, idleOr(sp.up.GetTimeouts().GetIdle().AsDuration(), 90*time.Second), breaker.Conns(o.breakerNow))
	}
	o.mirror = mirror.NewSender(mirror.Options{
		Dialer: func(wantID string) func(ctx context.Context, addr string) (net.Conn, error) {
			cfg := p.clientTLS(func() string { return wantID }, []string{"h2"})
			return func(ctx context.Context, addr string) (net.Conn, error) {
				return dialMesh(ctx, addr, cfg, p.opts.DialTimeout)
			}
		},
		Counted: func(service, result string) { p.metrics.mirrored.WithLabelValues(service, result).Inc() },
		Logger:  p.log,
	})
	o.rp = &httputil.ReverseProxy{
		Rewrite:        o.rewrite,
		Transport:      roundTripFunc(o.roundTrip),
		FlushInterval:  0, // at once for bodies of unknown length (streams, gRPC)
		BufferPool:     copyBuffers,
		ModifyResponse: o.modifyResponse,
		ErrorHandler:   o.proxyError,
		ErrorLog:       p.errorLog,
	}
	o.bytes = p.opts.HTTP1Engine == HTTP1Bytes && o.h1 != nil
	if addr != nil { // nil: a gateway route's, which the gateway hands requests (gateway.go)
		o.http = startHTTP(addr, http.HandlerFunc(o.serveHTTP), protocols(true, false, true), nil, p.errorLog, o.shield)
	}
	return o
}

func idleOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (o *outbound) key() string                { return KeyUpstream(o.name) }
func (o *outbound) idleTimeout() time.Duration { return o.idle }
func (o *outbound) serverKey() string          { return o.srvKey }
func (o *outbound) protocol() meshapi.Protocol { return o.proto }

func (o *outbound) update(sp spec) {
	if o.shield != nil {
		o.shield.Set(sp.prot)
	}
	var prev []*endpoint
	old := o.st.Load()
	if old != nil {
		prev = old.eps
	}
	eps := balance.Build(sp.up.GetEndpoints(), prev)
	lbNew := func(eps []*endpoint) balancer { return balance.New(sp.up.GetLb(), eps, o.p.opts.Intn) }
	st := &outboundState{
		service: sp.up.GetService(),
		wantID:  sp.up.GetSpiffeId(),
		eps:     eps,
		lb:      lbNew(eps),
		connect: o.p.opts.DialTimeout,
		hash:    sp.up.GetHash(),
		self:    sp.cfg.GetInstanceId(),
		ownID:   sp.cfg.GetSpiffeId(),
		det:     o.det,
		request: sp.up.GetTimeouts().GetRequest().AsDuration(),
		stream:  sp.up.GetTimeouts().GetStream().AsDuration(),
	}
	st.all = &pool{eps: eps, lb: st.lb}
	// Checked by listenerSpecs before Apply changes anything.
	st.ext, _ = newExternal(sp.up, sp.cfg)
	var prevBreaker *breaker.Breaker
	if old != nil {
		prevBreaker = old.breaker
	}
	st.breaker = breaker.New(sp.up.GetCircuitBreaker(), prevBreaker)
	if d := sp.up.GetTimeouts().GetConnect().AsDuration(); d > 0 {
		st.connect = d
	}
	var prevRoutes []*route
	if old != nil {
		prevRoutes = old.routes
	}
	// Checked by listenerSpecs before Apply changes anything.
	st.routes, _ = compileRoutes(sp.up, eps, lbNew, prevRoutes)
	st.readsHeaders = readsHeaders(st)
	if st.service == "" {
		st.service = sp.up.GetName()
	}
	o.p.stats.bindOutbound(st, st.wantID)
	o.st.Store(st)
	o.det.Update(sp.up.GetOutlierDetection(), eps)
	if old != nil && (old.wantID != st.wantID || extKey(old.ext) != extKey(st.ext)) && o.mesh != nil {
		// Pooled connections were verified against the old identity.
		o.mesh.CloseIdleConnections()
		o.mesh1.CloseIdleConnections()
		if o.meshGRPC != nil {
			o.meshGRPC.CloseIdleConnections()
		}
		if o.h1 != nil {
			o.h1.CloseIdle()
		}
	}
}

// readsHeaders reports whether st's routes or hash policy read request
// headers (or the query).
func readsHeaders(st *outboundState) bool {
	if st.hash.GetHeader() != "" || st.hash.GetCookie() != "" {
		return true
	}
	headers, query := map[string]bool{}, map[string]bool{}
	for _, rt := range st.routes {
		for _, m := range rt.matchers {
			m.Inputs(headers, query)
		}
	}
	return len(headers) > 0
}

// breakerNow is the circuit breaker of the configuration in force, and
// the gauge of its requests waiting; the HTTP/1.1 pool's connection limit
// reads it (breaker.Conns).
func (o *outbound) breakerNow() (*breaker.Breaker, prometheus.Gauge) {
	st := o.st.Load()
	return st.breaker, o.p.metrics.pending.WithLabelValues(st.service)
}

// dialError is a failure to reach an endpoint; nothing was sent, so the
// request may go to another one.
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string { return fmt.Sprintf("dialing %s: %v", e.addr, e.err) }
func (e *dialError) Unwrap() error { return e.err }

// dialMesh dials an upstream sidecar over mTLS, verifying its identity.
func dialMesh(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{addr: addr, err: err}
	}
	return c.(*tls.Conn), nil
}

func (o *outbound) handle(raw net.Conn) bool {
	if o.http != nil && o.http.ln.closedNow() {
		return false
	}
	c, ok := o.shield.Admit(raw)
	if !ok {
		return true
	}
	st := o.st.Load()
	tc := track(c, &o.conns)
	tc.setPeer(o.p.metrics, dirOutbound, st.service, st.all.cell)
	if o.http != nil {
		if o.bytes {
			o.serveBytes(tc)
			return true
		}
		var conn net.Conn = tc
		if o.proto == meshapi.Protocol_PROTOCOL_GRPC {
			// A gRPC call's response frames leave in one write (h2cork).
			conn = h2cork.New(tc, h2cork.Server, 0)
		}
		if !o.http.ln.push(conn) {
			conn.Close()
		}
		return true
	}
	o.serveTCP(tc, st)
	return true
}

func (o *outbound) serveTCP(conn net.Conn, st *outboundState) {
	start := time.Now()
	done, ok := st.breaker.StartConn()
	if !ok {
		o.p.metrics.overflow.WithLabelValues(st.service, "max_connections").Inc()
		o.p.accessLine("access", "outbound").str("dest", st.service).str("proto", "tcp").
			str("error", "circuit breaker: max_connections reached").send(o.p)
		conn.Close()
		return
	}
	if st.ext != nil {
		if ok, why := st.ext.authorizeConn(); !ok {
			o.p.accessLine("access", "outbound", "REFUSED").str("dest", st.service).str("proto", "tcp").
				str("reason", why).strIf("caller", st.ownID).send(o.p)
			conn.Close()
			done()
			return
		}
	}
	up, ep, release, err := o.dialTCP(st)
	if err != nil {
		o.p.accessLine("access", "outbound").str("dest", st.service).str("proto", "tcp").str("error", err.Error()).send(o.p)
		conn.Close()
		done()
		return
	}
	pipe(conn, up, func(rx, tx int64) {
		release()
		done()
		o.p.accessLine("access", "outbound").str("dest", st.service).str("endpoint", ep.Addr).str("proto", "tcp").
			int("rx", rx).int("tx", tx).dur("dur", time.Since(start)).send(o.p)
	})
}

// dialTCP connects to an endpoint picked by the balancer, trying others
// when a dial fails.
func (o *outbound) dialTCP(st *outboundState) (net.Conn, *endpoint, func(), error) {
	skip := st.det.Skip(st.eps)
	var errs []error
	for range maxAttempts {
		var ep *endpoint
		if hb, ok := st.lb.(balance.HashBalancer); ok && st.hash.GetSourceIdentity() {
			ep = hb.PickHash(balance.Hash(st.self), skip)
		} else {
			ep = st.lb.Pick(skip)
		}
		if ep == nil {
			break
		}
		release := ep.Acquire()
		ctx, cancel := context.WithTimeout(context.Background(), st.connect)
		var c net.Conn
		var err error
		if st.ext != nil {
			c, err = st.ext.dial(ctx, ep.Addr, nil, st.connect)
		} else {
			c, err = dialMesh(ctx, ep.Addr, o.tls, st.connect)
		}
		cancel()
		if err == nil {
			st.det.Observe(ep, balance.OutcomeOK)
			return c, ep, release, nil
		}
		release()
		st.det.Observe(ep, balance.OutcomeLocal)
		errs = append(errs, err)
		if skip == nil {
			skip = make(map[*endpoint]bool)
		}
		skip[ep] = true
	}
	if len(errs) == 0 {
		return nil, nil, nil, fmt.Errorf("%w of service %s", errNoEndpoints, st.service)
	}
	return nil, nil, nil, fmt.Errorf("connecting to service %s: %w", st.service, errors.Join(errs...))
}

func (o *outbound) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := o.st.Load()
	ensureRequestID(r.Header) // requestid.go: to the upstream, and in its log
	if bad := canon.Canonicalize(r); bad != nil {
		// Routes match the canonical request, as the upstream's rules do.
		http.Error(w, "weft: bad request: "+bad.Error(), http.StatusBadRequest)
		o.count(st, nil, http.StatusBadRequest, "", time.Since(start))
		o.p.accessLine("access", "outbound", "REFUSED").str("dest", st.service).str("method", r.Method).
			str("target", r.RequestURI).int("status", http.StatusBadRequest).str("reason", bad.Error()).request(r, nil).send(o.p)
		return
	}
	dropH2CUpgrade(r.Header)
	if o.refuseExternal(w, r, st, start) { // external.go
		return
	}
	pk := &picked{pool: st.all}
	timeout, stream := st.request, st.stream
	for _, rt := range st.routes {
		if rt.matches(r) {
			pk.route = rt
			if len(rt.splits) > 0 {
				pk.pool = rt.pick(o.intn())
			}
			timeout, stream = rt.request, rt.stream
			break
		}
	}
	rec := &statusWriter{ResponseWriter: w}
	rec.countBody(r)
	if pk.route != nil && pk.route.fault != nil && o.injectFault(rec, r, st, pk.route) {
		o.count(st, pk, rec.status(), rec.grpcStatus(), time.Since(start))
		o.p.accessLine("access", "outbound").str("dest", st.service).str("route", pk.route.name).str("fault", "abort").
			str("method", r.Method).str("path", r.URL.Path).int("status", int64(rec.status())).grpcStatus(rec).
			strIf("caller", st.ownID).request(r, rec).send(o.p)
		return
	}
	// The request timeout also bounds a wait for a circuit-breaker slot.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	if isUpgrade(r) {
		// A WebSocket lives as long as its peers want: no request or
		// stream timeout.
		timeout, stream = 0, 0
	}
	if timeout > 0 {
		t := time.AfterFunc(timeout, func() { cancel(errRequestTimeout) })
		defer t.Stop()
	}
	release, ok := st.breaker.Acquire(ctx, o.p.metrics.pending.WithLabelValues(st.service))
	if !ok {
		o.p.metrics.overflow.WithLabelValues(st.service, "max_requests").Inc()
		msg := fmt.Sprintf("weft: circuit breaker of service %s: %d requests in flight and %d waiting; try again later",
			st.service, st.breaker.Config().GetMaxRequests(), st.breaker.Config().GetMaxPending())
		o.p.accessLine("access", "outbound").str("dest", st.service).str("method", r.Method).str("path", r.URL.Path).
			int("status", http.StatusServiceUnavailable).str("overloaded", "true").strIf("caller", st.ownID).
			str("reason", "circuit breaker: max_requests").request(r, nil).send(o.p)
		rec.Header().Set("X-Weft-Overloaded", "true")
		if isGRPC(r) {
			writeGRPCError(rec, grpcUnavailable, msg)
		} else {
			http.Error(rec, msg, http.StatusServiceUnavailable)
		}
		o.count(st, pk, rec.status(), rec.grpcStatus(), time.Since(start))
		return
	}
	defer release()
	mt := routeMirror(pk.route)
	if mt != nil && o.intn()(100) >= mt.Percent {
		mt = nil
	}
	// A body is recorded (up to retry.MaxBody) when a retry policy or a
	// mirror may need it again, and, for a callee's signal that its app is
	// unavailable, whenever it may fit (a declared length past MaxBody
	// never will).
	if pk.hasBody = r.Body != nil && r.Body != http.NoBody; pk.hasBody &&
		(r.ContentLength <= retry.MaxBody || mt != nil || (pk.route != nil && pk.route.retry != nil)) {
		pk.rec = retry.NewBodyRecorder(r.Body)
		r.Body = pk.rec
	}
	if mt != nil {
		// The copy goes once the request is done and its body known.
		defer func() {
			var body []byte
			if pk.hasBody {
				b, ok := pk.rec.Complete()
				if !ok {
					o.mirror.Drop(mt)
					return
				}
				body = b
			}
			o.mirror.Send(r, body, mt)
		}()
	}
	if stream > 0 {
		g := newIdleGuard(stream, func() { cancel(errStreamIdle) })
		defer g.stop()
		ctx = context.WithValue(ctx, idleGuardKey{}, g)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &guardedBody{ReadCloser: r.Body, g: g}
		}
	}
	ctx = context.WithValue(ctx, outboundStateKey{}, st)
	ctx = context.WithValue(ctx, pickedKey{}, pk)
	span := o.p.tracer.Outbound(r, st.service, st.wantID) // nil when off; the upstream gets its traceparent
	o.rp.ServeHTTP(rec, r.WithContext(ctx))
	d := time.Since(start)
	if span != nil {
		span.End(tracing.Outcome{Status: rec.status(), GRPCStatus: rec.grpcStatus(), Route: pk.routeName(), Subset: pk.subsetName(), Endpoint: pk.addr, Tries: pk.tries})
	}
	o.count(st, pk, rec.status(), rec.grpcStatus(), d)
	routeName, subset := "-", "-"
	if pk.route != nil {
		routeName = pk.route.name
	}
	if pk.pool != nil && pk.pool.subset != "" {
		subset = pk.pool.subset
	}
	endpoint := pk.addr
	if endpoint == "" {
		endpoint = "-"
	}
	o.p.accessLine("access", "outbound").str("dest", st.service).str("route", routeName).str("subset", subset).
		str("endpoint", endpoint).str("method", r.Method).str("path", r.URL.Path).int("status", int64(rec.status())).
		grpcStatus(rec).int("tries", int64(pk.tries)).dur("dur", d).strIf("caller", st.ownID).
		int("retries", int64(max(pk.tries-1, 0))).request(r, rec).send(o.p)
	if o.p.tapping() {
		o.p.tapOutbound(r, st.service, pk, rec, start, d)
	}
}

// injectFault delays the request and aborts it, each at its configured
// rate. It returns true when it answered the request itself.
func (o *outbound) injectFault(w http.ResponseWriter, r *http.Request, st *outboundState, rt *route) bool {
	f := rt.fault
	intn := o.intn()
	if f.GetDelayPercent() > 0 && intn(100) < int(f.GetDelayPercent()) {
		o.p.metrics.faults.WithLabelValues(st.service, "delay").Inc()
		t := time.NewTimer(f.GetDelay().AsDuration())
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if f.GetAbortPercent() == 0 || intn(100) >= int(f.GetAbortPercent()) {
		return false
	}
	o.p.metrics.faults.WithLabelValues(st.service, "abort").Inc()
	code := int(f.GetAbortStatus())
	msg := fmt.Sprintf("weft: fault injected by route %s of service %s", rt.name, st.service)
	if isGRPC(r) {
		writeGRPCError(w, grpcCodeFor(code), msg)
		return true
	}
	http.Error(w, msg, code)
	return true
}

// grpcCodeFor maps an HTTP status to the gRPC status a client would see
// for it, as gRPC's own HTTP mapping does.
func grpcCodeFor(code int) int {
	switch code {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return grpcPermissionDenied
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return grpcUnavailable
	}
	return 2 // UNKNOWN
}

// isUpgrade reports whether r asks to switch protocols (WebSocket). Such
// requests go to the upstream sidecar over HTTP/1.1, which can carry an
// upgrade; HTTP/2 cannot.
func isUpgrade(r *http.Request) bool { return h1pool.IsUpgrade(r) }

func routeMirror(rt *route) *mirror.Target {
	if rt == nil {
		return nil
	}
	return rt.mirror
}

func (o *outbound) intn() func(int) int {
	if o.p.opts.Intn != nil {
		return o.p.opts.Intn
	}
	return rand.IntN
}

// Causes of a request's end that the proxy answers for.
var (
	errRequestTimeout = errors.New("the request timeout expired")
	errStreamIdle     = errors.New("the stream timeout expired: no bytes either way")
)

func (o *outbound) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "https"
	pr.Out.URL.Host = "upstream.invalid" // replaced by the endpoint in roundTrip
	pr.Out.Host = pr.In.Host
	if st, ok := pr.In.Context().Value(outboundStateKey{}).(*outboundState); ok && st.ext != nil {
		pr.Out.Host = st.ext.host // the app called a local port; the outside host is declared
	}
	setForwarded(pr.In, pr.Out) // a gateway's request (gateway.go)
	if pk, ok := pr.In.Context().Value(pickedKey{}).(*picked); ok && pk.route != nil {
		applyHeaderOps(pr.Out.Header, pk.route.reqHdrs)
	}
}

func (o *outbound) modifyResponse(resp *http.Response) error {
	if pk, ok := resp.Request.Context().Value(pickedKey{}).(*picked); ok && pk.route != nil {
		applyHeaderOps(resp.Header, pk.route.respHdrs)
	}
	if g, ok := resp.Request.Context().Value(idleGuardKey{}).(*idleGuard); ok && resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &guardedBody{ReadCloser: resp.Body, g: g}
	}
	return grpcTrailersOnly(resp)
}

// applyHeaderOps removes, then sets, then adds headers.
func applyHeaderOps(h http.Header, ops *meshapi.HeaderOps) {
	if ops == nil {
		return
	}
	for _, k := range ops.GetRemove() {
		h.Del(k)
	}
	for k, v := range ops.GetSet() {
		h.Set(k, v)
	}
	for k, v := range ops.GetAdd() {
		h.Add(k, v)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends one request to an endpoint of the pool serveHTTP chose.
// A request that fails to connect is tried on another endpoint when it
// has no body; with a retry policy, failures it names are tried again,
// within its attempts and budget, on other endpoints while there are any.
// Each try is the steps of exchange (below): pick an endpoint, send,
// observe the outcome for outlier detection, then deliver the response or
// decide whether another try may follow.
func (o *outbound) roundTrip(req *http.Request) (*http.Response, error) {
	x := o.newExchange(req)
	defer x.finish()
	var lastErr error
	for try := 0; ; try++ {
		ep := x.nextEndpoint()
		if ep == nil {
			break
		}
		x.pk.tries = try + 1
		resp, done, err := x.try(ep, try+1 >= x.attempts)
		if done {
			return resp, err
		}
		lastErr = err
		x.skipEndpoint(ep)
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("%w of %s", errNoEndpoints, x.where)
}

// exchange is one request's way through roundTrip: the upstream state and
// pool it was routed to, its retry policy, and what the tries so far left
// (the endpoints to skip, the body for the next try, a retry slot held).
type exchange struct {
	o        *outbound
	req      *http.Request
	st       *outboundState
	pk       *picked
	rp       *retry.Policy // nil: no retries but the dial failover
	attempts int
	bodiless bool
	where    string // "service api" or "subset v2 of service api", for errors

	pick     func(skip map[*endpoint]bool) *endpoint
	skip     map[*endpoint]bool // endpoints tried or ejected
	nextBody io.ReadCloser      // the body of the next try
	nextLen  int64
	endRetry func() // gives back the retry slot held, if any
}

// newExchange reads what serveHTTP chose for req (its state and pool, or
// the state in force and every endpoint), counts the request in its retry
// budget and sets up the balancer's pick.
func (o *outbound) newExchange(req *http.Request) *exchange {
	st, _ := req.Context().Value(outboundStateKey{}).(*outboundState)
	if st == nil {
		st = o.st.Load()
	}
	pk, _ := req.Context().Value(pickedKey{}).(*picked)
	if pk == nil {
		pk = &picked{pool: st.all}
	}
	x := &exchange{o: o, req: req, st: st, pk: pk, attempts: maxAttempts, endRetry: func() {}}
	if pk.route != nil {
		x.rp = pk.route.retry
	}
	if x.rp != nil {
		x.rp.Request()
		x.attempts = max(x.rp.Attempts(), 1)
	}
	x.bodiless = req.Body == nil || req.Body == http.NoBody
	x.nextBody, x.nextLen = req.Body, req.ContentLength
	x.where = "service " + st.service
	if pk.pool.subset != "" {
		x.where = fmt.Sprintf("subset %s of service %s", pk.pool.subset, st.service)
	}
	x.pick = pickFor(pk.pool.lb, st, req)
	x.skip = st.det.Skip(pk.pool.eps)
	return x
}

// pickFor is lb's pick for req: on the request's hash key when lb hashes
// and the upstream's hash policy finds one in req.
func pickFor(lb balancer, st *outboundState, req *http.Request) func(skip map[*endpoint]bool) *endpoint {
	if hb, ok := lb.(balance.HashBalancer); ok {
		if h, ok := balance.HashKey(st.hash, req, st.self); ok {
			return func(skip map[*endpoint]bool) *endpoint { return hb.PickHash(h, skip) }
		}
	}
	return lb.Pick
}

// finish gives back a retry slot still held when roundTrip returns.
func (x *exchange) finish() { x.endRetry() }

// nextEndpoint picks the endpoint of the next try, or nil when none is
// left. With a retry policy, once every endpoint failed (or is ejected),
// it starts over.
func (x *exchange) nextEndpoint() *endpoint {
	ep := x.pick(x.skip)
	if ep == nil && len(x.skip) > 0 && x.rp != nil {
		x.skip = nil // every endpoint failed once: start over
		ep = x.pick(nil)
	}
	return ep
}

// skipEndpoint leaves ep out of the next tries.
func (x *exchange) skipEndpoint(ep *endpoint) {
	if x.skip == nil {
		x.skip = make(map[*endpoint]bool)
	}
	x.skip[ep] = true
}

// try sends the request to ep once. done reports that roundTrip returns
// resp and err as they are; otherwise err is why this try failed and
// another may follow.
func (x *exchange) try(ep *endpoint, last bool) (resp *http.Response, done bool, err error) {
	release := ep.Acquire()
	ctx, cancel := context.WithCancel(x.req.Context())
	pt := x.startPerTry(cancel)
	resp, err = x.transport().RoundTrip(x.outgoing(ep).WithContext(ctx))
	x.endRetry()
	x.endRetry = func() {}
	resp, err = pt.stop(resp, err)
	x.observe(ep, resp, err)
	if err == nil {
		return x.afterResponse(ep, resp, last, func() { release(); cancel() })
	}
	release()
	cancel()
	return x.afterError(ep, err, pt.expired.Load(), last)
}

// outgoing is the request for one try at ep, with the body for this try.
func (x *exchange) outgoing(ep *endpoint) *http.Request {
	out := *x.req
	u := *x.req.URL
	u.Host = ep.Addr
	out.URL = &u
	if !x.bodiless {
		out.Body, out.ContentLength = x.nextBody, x.nextLen
	}
	return &out
}

// transport is what carries the request: the HTTP/1.1 pool for
// PROTOCOL_HTTP (it hands upgrades and streaming bodies to mesh1), an
// HTTP/1.1 transport for an upgrade, else HTTP/2 (meshGRPC for a GRPC
// upstream's sidecars).
func (x *exchange) transport() http.RoundTripper {
	switch {
	case x.o.h1 != nil:
		return x.o.h1
	case isUpgrade(x.req):
		return x.o.mesh1
	case x.o.meshGRPC != nil && x.st.ext == nil:
		return x.o.meshGRPC
	}
	return x.o.mesh
}

// perTry is a try's per-try timeout: it cancels the try when it fires.
type perTry struct {
	timer   *time.Timer // nil: no per-try timeout
	expired atomic.Bool
}

func (x *exchange) startPerTry(cancel context.CancelFunc) *perTry {
	pt := &perTry{}
	if x.rp != nil && x.rp.PerTry() > 0 {
		pt.timer = time.AfterFunc(x.rp.PerTry(), func() { pt.expired.Store(true); cancel() })
	}
	return pt
}

// stop stops the timer; a response whose headers came as it fired counts
// as late.
func (pt *perTry) stop(resp *http.Response, err error) (*http.Response, error) {
	if pt.timer != nil && !pt.timer.Stop() && err == nil {
		resp.Body.Close()
		return nil, context.Canceled
	}
	return resp, err
}

// observe tells outlier detection how the try at ep went (unless the
// client went away).
func (x *exchange) observe(ep *endpoint, resp *http.Response, err error) {
	if x.req.Context().Err() != nil {
		return
	}
	outcome := balance.OutcomeLocal
	if err == nil {
		outcome = balance.OutcomeOf(resp.StatusCode)
	}
	x.st.det.Observe(ep, outcome)
}

// outlierEvent logs and counts an ejection or a return.
func (o *outbound) outlierEvent(ev balance.Event) {
	service := o.st.Load().service
	if !ev.Ejected {
		o.p.log.Info("outbound: an ejected endpoint returns", "service", service, "endpoint", ev.Endpoint.ID, "addr", ev.Endpoint.Addr)
		return
	}
	o.p.metrics.ejections.WithLabelValues(service, ev.Reason).Inc()
	args := []any{"service", service, "endpoint", ev.Endpoint.ID, "addr", ev.Endpoint.Addr, "reason", ev.Reason, "until", ev.Until}
	if ev.Reason == balance.ReasonSuccessRate {
		args = append(args, "success_rate", ev.Rate, "threshold", ev.Threshold)
	}
	o.p.log.Warn("outbound: ejected an endpoint", args...)
}

// afterResponse delivers resp, its body releasing the endpoint and the
// try's context when closed, unless the retry policy retries its status
// and the body, the budget and the breaker allow another try.
func (x *exchange) afterResponse(ep *endpoint, resp *http.Response, last bool, done func()) (*http.Response, bool, error) {
	if isAppUnavailable(resp) && !last {
		body, n, ok := x.replay(false)
		if ok && x.allowSignalRetry() {
			x.nextBody, x.nextLen = body, n
			x.o.p.metrics.sigRetried.WithLabelValues(x.st.service).Inc()
			resp.Body.Close()
			done()
			return nil, false, fmt.Errorf("calling %s at %s: %w", x.where, ep.Addr, errAppUnavailable)
		}
	}
	grpcStatus := ""
	if x.rp != nil && x.rp.ReadsGRPCStatus() && isGRPC(x.req) {
		grpcStatus = retry.PeekGRPCStatus(resp)
	}
	var replayable bool
	if x.rp != nil && !last && x.rp.RetriableStatus(resp.StatusCode, grpcStatus) {
		x.nextBody, x.nextLen, replayable = x.replay(false)
	}
	if !replayable || !x.rp.AllowRetry() || !x.takeRetrySlot() {
		x.pk.addr = ep.Addr
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
			resp.Body = &releaseConn{ReadWriteCloser: rwc, release: done}
		} else {
			resp.Body = &releaseBody{ReadCloser: resp.Body, release: done}
		}
		return resp, true, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, retry.MaxBody))
	resp.Body.Close()
	done()
	return nil, false, fmt.Errorf("calling %s at %s: status %d", x.where, ep.Addr, resp.StatusCode)
}

// afterError decides what a failed try leads to: the client's own
// cancellation and a full connection pool end the request; a dial
// failure, or a pooled connection that took no byte of the request
// (h1pool.ErrNotSent), is tried elsewhere when the body can go again
// (nothing was sent); other errors the retry policy names are retried
// within its budget and the breaker's max_retries.
func (x *exchange) afterError(ep *endpoint, err error, expired, last bool) (*http.Response, bool, error) {
	if x.req.Context().Err() != nil {
		return nil, true, context.Cause(x.req.Context())
	}
	if errors.Is(err, h1pool.ErrConnOverflow) {
		return nil, true, err // another endpoint would not free a connection
	}
	if expired {
		err = fmt.Errorf("no response headers within the per-try timeout %v", x.rp.PerTry())
	}
	tryErr := fmt.Errorf("calling %s at %s: %w", x.where, ep.Addr, err)
	var de *dialError
	isDial := errors.As(err, &de)
	notSent := isDial || errors.Is(err, h1pool.ErrNotSent)
	retry := false
	if !last && (notSent || (x.rp != nil && x.rp.RetriableError(isDial, expired))) {
		var replayable bool
		x.nextBody, x.nextLen, replayable = x.replay(isDial)
		switch {
		case !replayable:
		case notSent:
			retry = true // nothing was sent
		default:
			retry = x.rp.AllowRetry() && x.takeRetrySlot()
		}
	}
	return nil, !retry, tryErr
}

// replay returns the body for another try, when there can be one: none,
// the recorder untouched after a failed dial, or the recorded body when it
// went out whole.
func (x *exchange) replay(dialFailed bool) (io.ReadCloser, int64, bool) {
	switch {
	case x.bodiless:
		return x.req.Body, x.req.ContentLength, true
	case x.pk.rec == nil:
		return nil, 0, false
	case dialFailed && x.pk.rec.Untouched():
		return x.pk.rec, x.req.ContentLength, true
	}
	b, ok := x.pk.rec.Complete()
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), ok
}

// allowSignalRetry decides whether a try the callee's sidecar answered
// with the signal (its app cannot take the request; nothing reached it)
// goes to another endpoint: for any method, within the route's retry
// budget when it has a retry policy (else within maxAttempts, as a failed
// dial), and the circuit breaker's max_retries.
func (x *exchange) allowSignalRetry() bool {
	if x.rp != nil && !x.rp.AllowRetry() {
		return false
	}
	return x.takeRetrySlot()
}

// takeRetrySlot takes a retry slot from the circuit breaker, held until
// the next try returns.
func (x *exchange) takeRetrySlot() bool {
	done, ok := x.st.breaker.StartRetry()
	if !ok {
		x.o.p.metrics.overflow.WithLabelValues(x.st.service, "max_retries").Inc()
		return false
	}
	x.endRetry = done
	return true
}

// releaseBody ends a request's in-flight count when its response body is
// closed, so long streams count as in flight for their whole life.
type releaseBody struct {
	io.ReadCloser
	release func()
}

func (b *releaseBody) Close() error {
	b.release()
	return b.ReadCloser.Close()
}

// releaseConn is releaseBody for an upgraded connection, which the
// reverse proxy writes to as well.
type releaseConn struct {
	io.ReadWriteCloser
	release func()
}

func (c *releaseConn) Close() error {
	c.release()
	return c.ReadWriteCloser.Close()
}

func (o *outbound) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(outboundStateKey{}).(*outboundState)
	if st == nil {
		st = o.st.Load()
	}
	var msg string
	code, grpcCode := http.StatusBadGateway, grpcUnavailable
	cause := context.Cause(r.Context())
	switch {
	case errors.Is(err, errNoEndpoints):
		msg = fmt.Sprintf("weft: %v", err)
		code = http.StatusServiceUnavailable
	case errors.Is(err, errAppUnavailable):
		msg = fmt.Sprintf("weft: %v", err)
		code = http.StatusServiceUnavailable
		w.Header().Set(HeaderUnavailable, ValueUnavailableApp)
	case errors.Is(err, h1pool.ErrConnOverflow):
		o.p.metrics.overflow.WithLabelValues(st.service, "max_connections").Inc()
		msg = fmt.Sprintf("weft: circuit breaker of service %s: %d connections busy and %d requests waiting; try again later",
			st.service, st.breaker.Config().GetMaxConnections(), st.breaker.Config().GetMaxPending())
		code = http.StatusServiceUnavailable
		w.Header().Set("X-Weft-Overloaded", "true")
	case errors.Is(cause, errRequestTimeout) || errors.Is(cause, errStreamIdle):
		msg = fmt.Sprintf("weft: calling service %s: %v", st.service, cause)
		code, grpcCode = http.StatusGatewayTimeout, grpcDeadlineExceeded
	default:
		msg = fmt.Sprintf("weft: %v", err)
	}
	o.p.log.Warn("outbound: request failed", "service", st.service, "err", msg)
	if isGRPC(r) {
		writeGRPCError(w, grpcCode, msg)
		return
	}
	http.Error(w, msg, code)
}

func (o *outbound) shutdown(ctx context.Context) {
	if o.http != nil {
		o.http.shutdown(ctx)
	}
	o.idleBytes.closeAll()
	if !o.conns.wait(ctx) {
		o.conns.closeAll()
	}
	if o.mesh != nil {
		o.mesh.CloseIdleConnections()
		o.mesh1.CloseIdleConnections()
		if o.meshGRPC != nil {
			o.meshGRPC.CloseIdleConnections()
		}
	}
	if o.h1 != nil {
		o.h1.Close()
	}
	if o.mirror != nil {
		o.mirror.Close()
	}
	o.det.Close()
}
