package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// maxAttempts bounds how many endpoints one connection or request tries
// when dialing fails.
const maxAttempts = 3

// errNoEndpoints means an upstream has no instance left to try.
var errNoEndpoints = errors.New("no healthy instances")

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
	http *httpServer
	rp   *httputil.ReverseProxy
	mesh *http.Transport // pooled HTTP/2 over mTLS to upstream sidecars
}

// outboundState is what a config change swaps into a running upstream
// listener.
type outboundState struct {
	service string
	wantID  string // the SPIFFE ID the upstream's sidecars must present
	eps     []*endpoint
	lb      balancer
}

type (
	outboundStateKey struct{}
	pickedKey        struct{}
)

// picked records which endpoint served a request, for the access log.
type picked struct{ addr string }

func (p *Proxy) newOutbound(sp spec, addr net.Addr) *outbound {
	o := &outbound{p: p, name: sp.up.GetName(), proto: sp.proto}
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
			return dialMesh(ctx, addr, h2, p.opts.DialTimeout)
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	o.rp = &httputil.ReverseProxy{
		Rewrite:        o.rewrite,
		Transport:      roundTripFunc(o.roundTrip),
		FlushInterval:  -1,
		ModifyResponse: grpcTrailersOnly,
		ErrorHandler:   o.proxyError,
		ErrorLog:       p.log,
	}
	o.http = startHTTP(addr, http.HandlerFunc(o.serveHTTP), protocols(true, false, true), nil, p.log)
	return o
}

func (o *outbound) key() string                { return KeyUpstream(o.name) }
func (o *outbound) protocol() meshapi.Protocol { return o.proto }

func (o *outbound) update(sp spec) {
	var prev []*endpoint
	old := o.st.Load()
	if old != nil {
		prev = old.eps
	}
	eps := buildEndpoints(sp.up.GetEndpoints(), prev)
	st := &outboundState{
		service: sp.up.GetService(),
		wantID:  sp.up.GetSpiffeId(),
		eps:     eps,
		lb:      newBalancer(sp.up.GetLb(), eps, o.p.opts.Intn),
	}
	if st.service == "" {
		st.service = sp.up.GetName()
	}
	o.st.Store(st)
	if old != nil && old.wantID != st.wantID && o.mesh != nil {
		// Pooled connections were verified against the old identity.
		o.mesh.CloseIdleConnections()
	}
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
	st := o.st.Load()
	tc := track(raw, &o.conns)
	tc.setPeer(o.p.metrics, dirOutbound, st.service)
	if o.http != nil {
		if !o.http.ln.push(tc) {
			tc.Close()
		}
		return true
	}
	o.serveTCP(tc, st)
	return true
}

func (o *outbound) serveTCP(conn net.Conn, st *outboundState) {
	start := time.Now()
	up, ep, release, err := o.dialTCP(st)
	if err != nil {
		o.p.log.Printf("access outbound dest=%s proto=tcp error=%q", st.service, err.Error())
		conn.Close()
		return
	}
	defer release()
	rx, tx := pipe(conn, up)
	o.p.log.Printf("access outbound dest=%s endpoint=%s proto=tcp rx=%d tx=%d dur=%s", st.service, ep.addr, rx, tx, time.Since(start).Round(time.Microsecond))
}

// dialTCP connects to an endpoint picked by the balancer, trying others
// when a dial fails.
func (o *outbound) dialTCP(st *outboundState) (net.Conn, *endpoint, func(), error) {
	var skip map[*endpoint]bool
	var errs []error
	for range maxAttempts {
		ep := st.lb.pick(skip)
		if ep == nil {
			break
		}
		release := ep.acquire()
		ctx, cancel := context.WithTimeout(context.Background(), o.p.opts.DialTimeout)
		c, err := dialMesh(ctx, ep.addr, o.tls, o.p.opts.DialTimeout)
		cancel()
		if err == nil {
			return c, ep, release, nil
		}
		release()
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
	pk := &picked{}
	rec := &statusWriter{ResponseWriter: w}
	ctx := context.WithValue(r.Context(), outboundStateKey{}, st)
	ctx = context.WithValue(ctx, pickedKey{}, pk)
	o.rp.ServeHTTP(rec, r.WithContext(ctx))
	d := time.Since(start)
	o.p.metrics.request(dirOutbound, st.service, rec.status(), d)
	o.p.log.Printf("access outbound dest=%s endpoint=%s method=%s path=%s status=%d%s dur=%s",
		st.service, pk.addr, r.Method, r.URL.Path, rec.status(), rec.grpcStatus(), d.Round(time.Microsecond))
}

func (o *outbound) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "https"
	pr.Out.URL.Host = "upstream.invalid" // replaced by the endpoint in roundTrip
	pr.Out.Host = pr.In.Host
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends one request to an endpoint picked by the balancer. A
// request without a body is tried on another endpoint when dialing fails.
func (o *outbound) roundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(outboundStateKey{}).(*outboundState)
	if st == nil {
		st = o.st.Load()
	}
	retryable := req.Body == nil || req.Body == http.NoBody
	var skip map[*endpoint]bool
	var lastErr error
	for range maxAttempts {
		ep := st.lb.pick(skip)
		if ep == nil {
			break
		}
		release := ep.acquire()
		out := *req
		u := *req.URL
		u.Host = ep.addr
		out.URL = &u
		resp, err := o.mesh.RoundTrip(&out)
		if err == nil {
			if pk, ok := req.Context().Value(pickedKey{}).(*picked); ok {
				pk.addr = ep.addr
			}
			resp.Body = &releaseBody{ReadCloser: resp.Body, release: release}
			return resp, nil
		}
		release()
		lastErr = fmt.Errorf("calling service %s at %s: %w", st.service, ep.addr, err)
		var de *dialError
		if !retryable || !errors.As(err, &de) {
			return nil, lastErr
		}
		if skip == nil {
			skip = make(map[*endpoint]bool)
		}
		skip[ep] = true
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("%w of service %s", errNoEndpoints, st.service)
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

func (o *outbound) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(outboundStateKey{}).(*outboundState)
	if st == nil {
		st = o.st.Load()
	}
	var msg string
	code := http.StatusBadGateway
	if errors.Is(err, errNoEndpoints) {
		msg = fmt.Sprintf("weft: no healthy instances of service %s", st.service)
		code = http.StatusServiceUnavailable
	} else {
		msg = fmt.Sprintf("weft: %v", err)
	}
	o.p.log.Printf("outbound %s: %s", st.service, msg)
	if isGRPC(r) {
		writeGRPCError(w, grpcUnavailable, msg)
		return
	}
	http.Error(w, msg, code)
}

func (o *outbound) shutdown(ctx context.Context) {
	if o.http != nil {
		o.http.shutdown(ctx)
	}
	if !o.conns.wait(ctx) {
		o.conns.closeAll()
	}
	if o.mesh != nil {
		o.mesh.CloseIdleConnections()
	}
}
