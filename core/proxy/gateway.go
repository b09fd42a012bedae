package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/guard"
	"github.com/weftmesh/weft/core/proxy/jwtauth"
	"github.com/weftmesh/weft/core/proxy/ratelimit"
)

// Gateway mode. A configuration with a gateway (ProxyConfig.gateway, from
// a policy's gateway block) makes the proxy an ingress gateway: it has no
// inbound and no app, and opens one listener per gateway listener, keyed
// KeyGateway(name), to clients outside the mesh. The same binary runs it;
// only the configuration differs, so the plumbing (join with the
// instance's own token, config stream, renewal) is the sidecar's, and the
// gateway's identity is the gateway service's SPIFFE ID, which its mesh
// calls present like any caller's.
//
// Each route of a listener carries its service as an upstream
// (meshapi.GatewayRoute.upstream), which the gateway serves with the
// outbound machinery of outbound.go (an outbound without a socket of its
// own): routes, splits, retries, timeouts, header changes, faults,
// mirrors, circuit breaking, outlier detection, balancing and the mTLS
// dial all work as for a sidecar's upstream. A request's way:
//
//  1. handle: HTTPS ends TLS (the listener's certificate, its SNI list and
//     minimum version; plain HTTP on the TLS port gets a 400 that says so),
//     HTTP takes HTTP/1.1 or h2c, and both hand the connection to the
//     listener's http.Server (HTTP/1.1, and h2 by ALPN).
//  2. serveHTTP: the Host (or :authority) is checked and put in canonical
//     form (a Host header that disagrees with :authority: 400; on HTTPS
//     with an sni list, a host outside it: 421), then authenticate runs
//     (the inbound check before routing: end-user authentication goes
//     there), client address headers are removed, the request is put in
//     canonical form (canon), the gateway service's rate limits
//     apply (429), and the first route whose hosts and matches hold takes
//     it; none: 404 (gRPC UNIMPLEMENTED). docs/edge-threats.md lists the
//     attacks tried against it.
//  3. The route's outbound serveHTTP: the upstream's own routes, and the
//     mTLS call to a sidecar of the service, as for any caller, with
//     X-Forwarded-For and X-Forwarded-Proto set from the client's
//     connection (setForwarded).
//
// With WEFT_HTTP1_ENGINE=bytes, steps 1 to 3 run on the bytes of an
// HTTP/1.1 client's requests (gateway_bytes.go), in the same order and
// with the same answers, handing a connection to the listener's
// http.Server when a request needs net/http.
//
// TCP listeners pipe each connection to their one route's service over
// mTLS; TLS passthrough listeners read the ClientHello's SNI (bounded in
// size and time) without ending TLS, pick the route by it, and pipe the
// connection, ClientHello included, to the service, whose app ends TLS.

// KeyGateway is the listener key of the gateway listener named name.
func KeyGateway(name string) string { return "gateway/" + name }

// Limits of what a gateway reads from clients outside the mesh.
const (
	gatewayMaxHeaderBytes = 64 << 10 // request line and headers: past it, 431
	gatewayMaxHost        = 253      // a DNS name's longest
	gatewayMaxHello       = 64 << 10 // a TLS passthrough ClientHello
	// gatewayIPv6Prefix: outside clients on IPv6 are counted (connections
	// per source), tracked and blocked by their /64, as per_source_ip
	// rate limits bucket them: a subscriber commonly holds a whole /64.
	gatewayIPv6Prefix = 64
	gatewayReadHeader = 10 * time.Second
)

// gatewayProto is the spec protocol of a gateway listener: a listener
// whose protocol changes gets a new handler (Apply compares it).
func gatewayProto(p meshapi.GatewayProtocol) meshapi.Protocol {
	return meshapi.Protocol(100 + int32(p))
}

// checkGatewayMode refuses a configuration that is not the gateway
// Options.Gateway names, when it names one.
func (p *Proxy) checkGatewayMode(cfg *meshapi.ProxyConfig) error {
	want := p.opts.Gateway
	switch got := cfg.GetGateway().GetName(); {
	case want == "" || got == want:
		return nil
	case got == "":
		return fmt.Errorf("this proxy runs as gateway %q (--gateway), but the configuration is a sidecar's (service %s); check that the instance serves the gateway's service, or drop --gateway", want, cfg.GetService())
	default:
		return fmt.Errorf("this proxy runs as gateway %q (--gateway), but the configuration is gateway %q's; fix --gateway or the instance's service", want, got)
	}
}

// gatewaySpecs checks cfg's gateway and lists its listeners.
func gatewaySpecs(cfg *meshapi.ProxyConfig) ([]spec, error) {
	gw := cfg.GetGateway()
	if gw == nil {
		return nil, nil
	}
	if cfg.GetInbound() != nil {
		return nil, errors.New("the config has both an inbound and a gateway; a gateway instance takes no mesh calls")
	}
	jwt, err := jwtauth.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if _, err := ratelimit.Compile(gw.GetRateLimits(), nil); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	prot := protect.FromProto(cfg.GetProtection(), protect.Defaults())
	var specs []spec
	names := map[string]bool{}
	ups := map[string]bool{}
	for i, l := range gw.GetListeners() {
		name := l.GetName()
		if name == "" {
			return nil, fmt.Errorf("gateway listener %d has no name", i)
		}
		if names[name] {
			return nil, fmt.Errorf("gateway listener %q appears twice; listener names must be unique", name)
		}
		names[name] = true
		if err := checkPort("gateway listener "+name+" port", l.GetPort(), true); err != nil {
			return nil, err
		}
		if _, ok := meshapi.GatewayProtocol_name[int32(l.GetProtocol())]; !ok {
			return nil, fmt.Errorf("gateway listener %q: unknown protocol %d", name, l.GetProtocol())
		}
		if opaque := l.GetProtocol() == meshapi.GatewayProtocol_GATEWAY_PROTOCOL_TCP || l.GetProtocol() == meshapi.GatewayProtocol_GATEWAY_PROTOCOL_TLS_PASSTHROUGH; opaque && len(gw.GetJwt().GetProviders()) > 0 {
			return nil, fmt.Errorf("gateway listener %q is %s, which sees no HTTP requests, but the gateway requires end-user tokens (its service's jwt block); serve it from a gateway without a jwt requirement", name, l.GetProtocol())
		}
		sp := spec{key: KeyGateway(name), proto: gatewayProto(l.GetProtocol()), cfg: cfg, gw: l, jwt: jwt, prot: prot}
		if l.GetProtocol() == meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS {
			cert, err := gatewayCert(name, l.GetTls())
			if err != nil {
				return nil, fmt.Errorf("gateway listener %q: %w", name, err)
			}
			sp.gwCert = cert
		}
		if len(l.GetRoutes()) == 0 {
			return nil, fmt.Errorf("gateway listener %q has no route", name)
		}
		for j, r := range l.GetRoutes() {
			up := r.GetUpstream()
			if up == nil {
				return nil, fmt.Errorf("gateway listener %q route %d (%s) has no upstream", name, j, r.GetName())
			}
			if ups[up.GetName()] || up.GetName() == "" {
				return nil, fmt.Errorf("gateway listener %q route %q: upstream name %q is empty or used twice", name, r.GetName(), up.GetName())
			}
			ups[up.GetName()] = true
			if err := checkUpstream(up); err != nil {
				return nil, fmt.Errorf("gateway listener %q route %q: %w", name, r.GetName(), err)
			}
			for k, m := range r.GetMatches() {
				if _, err := canon.Compile(m); err != nil {
					return nil, fmt.Errorf("gateway listener %q route %q match %d: %w", name, r.GetName(), k, err)
				}
			}
		}
		bind := l.GetBindAddress()
		if bind == "" {
			bind = "0.0.0.0"
		}
		sp.addr = hostPort(bind, l.GetPort())
		specs = append(specs, sp)
	}
	return specs, nil
}

// gatewayCert loads an HTTPS listener's certificate from its files (nil
// with mesh_certificate: the proxy's own, at each handshake); the
// listener looks at the files again as it serves (certfile.go).
func gatewayCert(listener string, t *meshapi.GatewayTLS) (*fileCert, error) {
	switch {
	case t == nil:
		return nil, errors.New("an https listener needs tls: a certificate and key file, or mesh_certificate")
	case t.GetMinVersion() != "" && t.GetMinVersion() != "1.2" && t.GetMinVersion() != "1.3":
		return nil, fmt.Errorf("tls min_version %q: want \"1.2\" or \"1.3\"", t.GetMinVersion())
	case t.GetMeshCertificate():
		return nil, nil
	}
	return newFileCert(listener, t.GetCertFile(), t.GetKeyFile())
}

// gatewayListener serves one gateway listener.
type gatewayListener struct {
	p      *Proxy
	name   string
	gproto meshapi.GatewayProtocol
	st     atomic.Pointer[gatewayState]
	conns  connSet
	http   *httpServer // HTTP and HTTPS
	// shield is the listener's defences (core/protect): its clients are
	// outside the mesh, so every refusal is an intrusion signal from their
	// address.
	shield *protect.Shield
	srvKey string // the settings its server fixed at start (updater)

	mu   sync.Mutex
	outs map[string]*outbound // by upstream name, kept across updates

	// bytes: HTTP/1.1 clients are served by the byte-level engine
	// (gateway_bytes.go); idleBytes are its connections waiting for a
	// request, closed at shutdown.
	bytes     bool
	idleBytes idleSet
}

// gatewayState is what a config change swaps into a running gateway
// listener.
type gatewayState struct {
	listener string
	tls      *tls.Config       // HTTPS
	jwt      *jwtauth.Verifier // end-user tokens (nil: none checked)
	service  string            // the gateway's service: the realm of 401 challenges
	sni      []string          // HTTPS: the listener's server names (none: any)
	// limits are the gateway's service's rate limits, shared by its
	// listeners (carried over a configuration change).
	limits []*ratelimit.Limiter
	routes []*gatewayRoute
	// readsHeaders: a route's matches or a limit's read request headers
	// (the byte-level engine builds them only then).
	readsHeaders bool
}

type gatewayRoute struct {
	name     string
	hosts    []string
	matchers []*canon.Matcher // any; none: every request
	out      *outbound
}

func (p *Proxy) newGateway(sp spec, addr net.Addr) *gatewayListener {
	g := &gatewayListener{p: p, name: sp.gw.GetName(), gproto: sp.gw.GetProtocol(), outs: map[string]*outbound{},
		bytes: p.opts.HTTP1Engine == HTTP1Bytes}
	g.shield = p.newShieldV6(KeyGateway(g.name), sp.prot, true, gatewayIPv6Prefix)
	g.srvKey = sp.prot.ServerKey()
	g.update(sp)
	switch g.gproto {
	case meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTP:
		g.http = g.startHTTP(addr, protocols(true, false, true))
	case meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS:
		g.http = g.startHTTP(addr, protocols(true, true, false))
	}
	return g
}

// startHTTP is the listener's http.Server, with the gateway's limits on
// what clients send.
func (g *gatewayListener) startHTTP(addr net.Addr, protos *http.Protocols) *httpServer {
	s := &httpServer{
		srv: &http.Server{
			Handler:           g.shield.Handler(http.HandlerFunc(g.serveHTTP)),
			Protocols:         protos,
			ReadHeaderTimeout: gatewayReadHeader,
			IdleTimeout:       5 * time.Minute,
			MaxHeaderBytes:    gatewayMaxHeaderBytes,
			ErrorLog:          g.p.errorLog,
			ConnContext:       gatewayConnContext, // gateway_bytes.go
		},
		ln: newChanListener(addr),
	}
	g.shield.Server(s.srv) // the protection settings' timeouts and limits, where set
	go s.srv.Serve(s.ln)
	return s
}

func (g *gatewayListener) key() string                { return KeyGateway(g.name) }
func (g *gatewayListener) idleTimeout() time.Duration { return 0 }
func (g *gatewayListener) serverKey() string          { return g.srvKey }
func (g *gatewayListener) protocol() meshapi.Protocol { return gatewayProto(g.gproto) }

// update compiles the listener's routes, keeping the outbound of a route
// whose upstream keeps its protocol and idle timeout (its pools, balancer
// counts and retry budgets carry over), and drains the others.
func (g *gatewayListener) update(sp spec) {
	l := sp.gw
	st := &gatewayState{listener: l.GetName(), jwt: sp.jwt, service: sp.cfg.GetService()}
	if g.shield != nil {
		g.shield.Set(sp.prot)
	}
	// Apply runs updates one at a time (under p.mu): the first listener
	// compiles the gateway's limits (keeping the buckets of unchanged
	// ones), the others share them, so that a client has one bucket
	// whichever listener it calls.
	g.p.gwLimits, _ = ratelimit.Compile(sp.cfg.GetGateway().GetRateLimits(), g.p.gwLimits) // checked by gatewaySpecs
	st.limits = g.p.gwLimits
	if l.GetProtocol() == meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS {
		st.tls = g.p.gatewayTLS(l.GetTls(), sp.gwCert)
		st.sni = l.GetTls().GetSni()
	}
	g.mu.Lock()
	next := map[string]*outbound{}
	for _, r := range l.GetRoutes() {
		up := r.GetUpstream()
		usp := spec{key: KeyUpstream(up.GetName()), proto: up.GetProtocol(), cfg: sp.cfg, up: up}
		o := g.outs[up.GetName()]
		if o != nil && o.proto == usp.proto && o.idle == idleOf(usp) {
			o.update(usp)
		} else {
			if o != nil {
				g.p.drain(o)
			}
			o = g.p.newOutbound(usp, nil)
		}
		next[up.GetName()] = o
		gr := &gatewayRoute{name: r.GetName(), hosts: r.GetHosts(), out: o}
		for _, m := range r.GetMatches() {
			cm, _ := canon.Compile(m) // checked by gatewaySpecs
			gr.matchers = append(gr.matchers, cm)
		}
		st.routes = append(st.routes, gr)
	}
	for name, o := range g.outs {
		if next[name] == nil {
			g.p.drain(o)
		}
	}
	g.outs = next
	g.mu.Unlock()
	st.readsHeaders = gatewayReadsHeaders(st)
	g.st.Store(st)
}

// gatewayReadsHeaders reports whether st's routes or limits read request
// headers (or the query).
func gatewayReadsHeaders(st *gatewayState) bool {
	headers, query := map[string]bool{}, map[string]bool{}
	for _, rt := range st.routes {
		for _, m := range rt.matchers {
			m.Inputs(headers, query)
		}
	}
	for _, l := range st.limits {
		if m := l.Matcher(); m != nil {
			m.Inputs(headers, query)
		}
	}
	return len(headers) > 0
}

// gatewayTLS is an HTTPS listener's server side: its certificate (or the
// proxy's mesh certificate), its server names, its minimum version, and
// ALPN for h2 and HTTP/1.1. No client certificate is asked for.
func (p *Proxy) gatewayTLS(t *meshapi.GatewayTLS, cert *fileCert) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if t.GetMinVersion() == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	if cert != nil {
		cert.start(p.metrics.gwCerts, p.log)
		cfg.GetCertificate = cert.get
	} else {
		cfg.GetCertificate = p.getCertificate
	}
	sni := t.GetSni()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		name := strings.ToLower(hello.ServerName)
		if len(name) > gatewayMaxHost {
			return nil, fmt.Errorf("refusing a ClientHello whose server name is %d bytes, longer than a DNS name (%d)", len(name), gatewayMaxHost)
		}
		if len(sni) > 0 && !hostIn(name, sni) {
			return nil, fmt.Errorf("refusing a ClientHello for server name %q: the listener answers only for %s", name, strings.Join(sni, ", "))
		}
		return nil, nil
	}
	return cfg
}

// hostIn reports whether host is one of names: equal, or, for "*.x.y",
// one label in front of ".x.y".
func hostIn(host string, names []string) bool {
	for _, n := range names {
		if n == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(n, "*"); ok {
			if first, rest, ok := strings.Cut(host, "."); ok && first != "" && "."+rest == suffix {
				return true
			}
		}
	}
	return false
}

func (g *gatewayListener) handle(raw net.Conn) bool {
	if g.http != nil && g.http.ln.closedNow() {
		return false
	}
	c, ok := g.shield.Admit(raw)
	if !ok {
		return true
	}
	tc := track(c, &g.conns)
	st := g.st.Load()
	switch g.gproto {
	case meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTP:
		if g.bytesServes(st) {
			g.serveBytes(tc, nil) // gateway_bytes.go
			return true
		}
		if !g.http.ln.push(tc) {
			tc.Close()
		}
	case meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS:
		conn := tls.Server(tc, st.tls)
		ctx, cancel := context.WithTimeout(context.Background(), g.handshakeTimeout())
		err := conn.HandshakeContext(ctx)
		cancel()
		if err != nil {
			g.refuseHandshake(tc, err)
			return true
		}
		if g.bytesServes(st) && conn.ConnectionState().NegotiatedProtocol != "h2" {
			g.serveBytes(conn, conn) // gateway_bytes.go
			return true
		}
		if !g.http.ln.push(conn) {
			conn.Close()
		}
	case meshapi.GatewayProtocol_GATEWAY_PROTOCOL_TCP:
		o := st.routes[0].out
		o.serveTCP(tc, o.st.Load())
	case meshapi.GatewayProtocol_GATEWAY_PROTOCOL_TLS_PASSTHROUGH:
		g.passthrough(tc, st)
	}
	return true
}

// handshakeTimeout bounds a client's TLS handshake (or, passing through,
// its ClientHello): the proxy's handshake timeout, or the protection's
// read_header_timeout when shorter, as on the inbound.
func (g *gatewayListener) handshakeTimeout() time.Duration {
	return min(g.p.opts.HandshakeTimeout, g.shield.Settings().ReadHeaderTimeout)
}

// refuseHandshake ends a connection whose TLS handshake failed (an
// intrusion signal from its address, as on the inbound). A client that
// spoke plain HTTP to the TLS port gets a plain 400 that says so.
func (g *gatewayListener) refuseHandshake(c net.Conn, err error) {
	g.p.note(protect.SourceKey(c.RemoteAddr().String(), gatewayIPv6Prefix), guard.Handshake)
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && rhe.Conn != nil {
		io.WriteString(rhe.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+
			"weft gateway: this port speaks TLS (https); a plain HTTP request came. Use https:// for this port.\n")
		err = errors.New("plain HTTP on a TLS port")
	}
	g.p.log.Warn("gateway: refused a TLS handshake", "listener", g.name, "from", c.RemoteAddr().String(), "err", err)
	c.Close()
}

// errPeeked stops a handshake once the ClientHello is read.
var errPeeked = errors.New("peeked")

// passthrough reads the ClientHello's SNI without ending TLS, picks the
// route whose hosts hold it, and pipes the whole connection to the
// route's service.
func (g *gatewayListener) passthrough(c net.Conn, st *gatewayState) {
	c.SetReadDeadline(time.Now().Add(g.handshakeTimeout()))
	rec := &recordingConn{Conn: c, r: io.LimitReader(c, gatewayMaxHello)}
	var sni string
	var got bool
	err := tls.Server(rec, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni, got = strings.ToLower(h.ServerName), true
		return nil, errPeeked
	}}).Handshake()
	c.SetReadDeadline(time.Time{})
	if !got {
		g.p.log.Warn("gateway: refused a connection: no TLS ClientHello", "listener", g.name, "from", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	if len(sni) > gatewayMaxHost {
		g.p.log.Warn("gateway: refused a connection: server name longer than a DNS name", "listener", g.name, "from", c.RemoteAddr().String(), "bytes", len(sni))
		c.Close()
		return
	}
	for _, r := range st.routes {
		if len(r.hosts) == 0 || hostIn(sni, r.hosts) {
			o := r.out
			o.serveTCP(&prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(rec.buf.Bytes()), c)}, o.st.Load())
			return
		}
	}
	g.p.log.Warn("gateway: refused a connection: no route for its server name", "listener", g.name, "from", c.RemoteAddr().String(), "sni", sni)
	c.Close()
}

// recordingConn keeps what a peeking handshake reads and writes nothing.
type recordingConn struct {
	net.Conn
	r   io.Reader
	buf bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.buf.Write(p[:n])
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) { return 0, errPeeked }

// prefixConn reads r (what was peeked, then the connection) and writes
// to the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (g *gatewayListener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	st := g.st.Load()
	host, why := requestHost(r.Host)
	if hv := r.Header.Values("Host"); why == "" && len(hv) > 0 && (len(hv) > 1 || !strings.EqualFold(hv[0], r.Host)) {
		// HTTP/2 and 3 keep a Host header beside :authority; two names
		// for one request are malformed (RFC 9113 8.3.1).
		why = "the :authority and the Host header name different hosts; send one host"
	}
	if why != "" {
		g.refuse(w, r, http.StatusBadRequest, "weft gateway: bad request: "+why)
		return
	}
	if requestTLS(r) && len(st.sni) > 0 && !hostIn(host, st.sni) {
		// Domain fronting: a handshake for a name the listener answers
		// for, then a request for a host it does not (Host, :authority or
		// an absolute URI). 421 tells a client to open a connection of
		// its own for that host (RFC 9110 15.5.20).
		g.refuse(w, r, http.StatusMisdirectedRequest, fmt.Sprintf("weft gateway: host %q is not one listener %s answers for (tls sni: %s); connect with that host as the TLS server name", host, st.listener, strings.Join(st.sni, ", ")))
		return
	}
	tokens, ok := g.authenticate(w, r, st)
	if !ok {
		return
	}
	// After authentication: a provider may read its token from such a
	// header (X-Forwarded-Access-Token).
	dropClientAddressHeaders(r.Header)
	if bad := canon.Canonicalize(r); bad != nil {
		g.refuse(w, r, http.StatusBadRequest, "weft gateway: bad request: "+bad.Error())
		return
	}
	if g.limited(w, r, st, tokens) {
		return
	}
	rt := st.route(host, r)
	if rt == nil {
		g.refuse(w, r, http.StatusNotFound, fmt.Sprintf("weft gateway: no route of listener %s takes host %q and path %q; check the host name and path, or the gateway's routes", st.listener, host, r.URL.Path))
		return
	}
	// Client address headers went at the start (dropClientAddressHeaders):
	// a client outside the mesh cannot forge them. The route's outbound
	// sets X-Forwarded-For and X-Forwarded-Proto from the connection
	// instead (setForwarded), which the services' sidecars pass on to
	// their apps from a gateway alone (Inbound.forwarding_callers).
	proto := "http"
	if requestTLS(r) {
		proto = "https"
	}
	r = r.WithContext(&forwardedContext{Context: r.Context(), f: forwarded{client: protect.SourceIP(r.RemoteAddr), proto: proto}})
	rt.out.serveHTTP(&gatewayWriter{ResponseWriter: w}, r) // denied.go
}

// forwarded is what a gateway tells the service about its client.
type forwarded struct{ client, proto string }

type forwardedKey struct{}

// forwardedContext carries a gateway request's forwarded under
// forwardedKey: context.WithValue's one allocation and the value's in
// one.
type forwardedContext struct {
	context.Context
	f forwarded
}

func (c *forwardedContext) Value(key any) any {
	if _, ok := key.(forwardedKey); ok {
		return &c.f
	}
	return c.Context.Value(key)
}

// setForwarded sets X-Forwarded-For and X-Forwarded-Proto on out, a
// gateway's request to a service, from what the gateway saw of in's
// client (nothing for a sidecar's own requests).
func setForwarded(in, out *http.Request) {
	if f, ok := in.Context().Value(forwardedKey{}).(*forwarded); ok {
		out.Header.Set("X-Forwarded-For", f.client)
		out.Header.Set("X-Forwarded-Proto", f.proto)
	}
}

// authenticate is the end-user check of a gateway request, run before
// routing: the tokens of the gateway service's JWT providers (jwt.go),
// required when its service has a jwt block. It returns the valid tokens,
// and false when it answered the request itself (401); a refused token is
// an intrusion signal from the client's address.
func (g *gatewayListener) authenticate(w http.ResponseWriter, r *http.Request, st *gatewayState) (jwtauth.Result, bool) {
	tokens, refused := g.p.checkJWT(w, r, st.jwt, st.service)
	if refused != "" {
		g.p.note(protect.SourceKey(r.RemoteAddr, gatewayIPv6Prefix), guard.JWT)
		g.p.accessLine("access", "gateway", "REFUSED").str("listener", g.name).str("method", r.Method).
			str("path", r.URL.Path).int("status", http.StatusUnauthorized).str("reason", refused).send(g.p)
		return tokens, false
	}
	return tokens, true
}

// limited applies the gateway service's rate limits to a request from
// outside the mesh (no caller identity: per_caller limits share one
// bucket; per_source_ip keys by the client's address, never by a header
// it sent; per_jwt_subject by its valid token's sub). It answers 429 with
// Retry-After (gRPC RESOURCE_EXHAUSTED) itself and returns true when a
// limit is spent.
func (g *gatewayListener) limited(w http.ResponseWriter, r *http.Request, st *gatewayState, tokens jwtauth.Result) bool {
	for _, l := range st.limits {
		ok, wait := l.AllowSubject("", tokens.Subject(l.JWTProvider()), r, time.Now())
		if ok {
			continue
		}
		g.p.metrics.limited.WithLabelValues("", l.Name()).Inc()
		g.p.note(protect.SourceKey(r.RemoteAddr, gatewayIPv6Prefix), guard.RateLimited)
		w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
		g.refuse(w, r, http.StatusTooManyRequests, fmt.Sprintf("weft gateway: rate limit %q of %s exceeded; retry in %s", l.Name(), st.service, wait.Round(time.Millisecond)))
		return true
	}
	return false
}

// clientAddressHeaders are the headers by which proxies tell an
// application a client's address, host or scheme. A client outside the
// mesh could send them to pose as another; the gateway removes them, in
// any case and with underscores for dashes (which CGI-style servers read
// as the same header), along with every X-Forwarded-* one.
var clientAddressHeaders = []string{
	"forwarded", "x-real-ip", "x-client-ip", "client-ip", "true-client-ip",
	"x-cluster-client-ip", "x-original-forwarded-for", "x-originating-ip",
	"cf-connecting-ip", "fastly-client-ip", "x-envoy-external-address",
}

func dropClientAddressHeaders(h http.Header) {
	for k := range h {
		if isClientAddressHeader(k) {
			delete(h, k)
		}
	}
}

// isClientAddressHeader reports whether name is an X-Forwarded-* header
// or one of clientAddressHeaders, in any case and with underscores for
// dashes, without a copy of name (it runs for every header of every
// request).
func isClientAddressHeader(name string) bool {
	const forwarded = "x-forwarded-"
	if len(name) >= len(forwarded) && equalFoldDashed(name[:len(forwarded)], forwarded) {
		return true
	}
	for _, c := range clientAddressHeaders {
		if len(name) == len(c) && equalFoldDashed(name, c) {
			return true
		}
	}
	return false
}

// route is the first route whose hosts hold host and one of whose
// matches holds r, or nil.
func (st *gatewayState) route(host string, r *http.Request) *gatewayRoute {
	for _, rt := range st.routes {
		if len(rt.hosts) > 0 && !hostIn(host, rt.hosts) {
			continue
		}
		if len(rt.matchers) == 0 {
			return rt
		}
		for _, m := range rt.matchers {
			if m.Match(r, nil) {
				return rt
			}
		}
	}
	return nil
}

// requestHost is the host a request names, in lower case without port or
// trailing dot, or why it is refused.
func requestHost(h string) (string, string) {
	if len(h) > gatewayMaxHost+7 { // a name, ":" and a port
		return "", fmt.Sprintf("the Host header is %d bytes, longer than a host name and port", len(h))
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if len(h) > gatewayMaxHost {
		return "", fmt.Sprintf("the host is %d bytes, longer than a DNS name (%d)", len(h), gatewayMaxHost)
	}
	return h, ""
}

// refuse answers a request the gateway will not route, and logs it.
func (g *gatewayListener) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if isGRPC(r) {
		writeGRPCError(w, grpcCodeFor(code), msg)
	} else {
		http.Error(w, msg, code)
	}
	host := r.Host
	if len(host) > 64 {
		host = host[:64] + "..."
	}
	g.p.accessLine("access", "gateway", "REFUSED").str("listener", g.name).str("host", host).str("method", r.Method).
		str("path", r.URL.Path).int("status", int64(code)).str("reason", msg).send(g.p)
}

func (g *gatewayListener) shutdown(ctx context.Context) {
	if g.http != nil {
		g.http.shutdown(ctx)
	}
	g.idleBytes.closeAll()
	if !g.conns.wait(ctx) {
		g.conns.closeAll()
	}
	g.mu.Lock()
	outs := g.outs
	g.outs = nil
	g.mu.Unlock()
	for _, o := range outs {
		o.shutdown(ctx)
	}
}
