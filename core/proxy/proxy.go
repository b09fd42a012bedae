package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/authz"
	"github.com/weftmesh/weft/core/proxy/guard"
	"github.com/weftmesh/weft/core/proxy/health"
	"github.com/weftmesh/weft/core/proxy/jwtauth"
	"github.com/weftmesh/weft/core/proxy/ratelimit"
	"github.com/weftmesh/weft/core/proxy/tracing"
	"github.com/weftmesh/weft/core/refusals"
	"github.com/weftmesh/weft/core/spiffe"
)

// Listener keys. The inbound listener has one; each upstream listener is
// keyed by the upstream's name.
const KeyInbound = "inbound"

// KeyUpstream is the listener key of the upstream named name.
func KeyUpstream(name string) string { return "upstream/" + name }

// Options tune a Proxy. The zero value is usable.
type Options struct {
	// Log receives access log lines (accesslog.go), and events when
	// Logger is nil. Default: os.Stderr.
	Log io.Writer
	// Logger receives events (listeners, refusals, ejections, failures).
	// Default: a text handler on Log.
	Logger *slog.Logger
	// AccessLogFormat is how access lines are written to Log: text
	// (key=value, the default) or JSON (accesslog.go).
	AccessLogFormat AccessLogFormat
	// DrainTimeout bounds how long Close waits for open connections before
	// closing them. Default: 5s.
	DrainTimeout time.Duration
	// HandshakeTimeout bounds an inbound mTLS handshake. Default: 10s.
	HandshakeTimeout time.Duration
	// DialTimeout bounds dialing an upstream sidecar or the local app.
	// Default: 5s.
	DialTimeout time.Duration
	// Intn, when set, replaces math/rand for the least-request balancer.
	Intn func(n int) int
	// Health, when set, hears of every change of the application's
	// health as this sidecar sees it (apphealth.go): its health check's
	// state, and a connection the app refused. The controller client
	// carries it to the controller.
	Health HealthReporter
	// Gateway, when set, is the only gateway this proxy serves: a
	// configuration that is not that gateway's (a sidecar's, another
	// gateway's) is refused (gateway.go).
	Gateway string
	// HTTP1Engine chooses the engine of the inbound and the outbound
	// listeners' HTTP/1.1 connections: "nethttp" (the default) or
	// "bytes", the byte-level engine of core/proxy/h1 (inbound_bytes.go
	// and outbound_bytes.go say which requests it serves and which it
	// hands to net/http). Empty: the environment variable
	// WEFT_HTTP1_ENGINE, else "nethttp".
	HTTP1Engine string
	// ReusePort binds every listener with SO_REUSEPORT (reuseport.go), so
	// that a new proxy of the same user can listen on the same ports
	// beside this one, take new connections, and this one be closed and
	// drained: an upgrade without a moment in which the ports refuse
	// connections. Linux only.
	ReusePort bool
}

// Proxy is the sidecar data plane. Create it with New, give it
// credentials with SetCredentials and configuration with Apply (or let a
// Client do both), and Close it when done. All methods are safe for
// concurrent use.
type Proxy struct {
	opts     Options
	log      *slog.Logger // events
	errorLog *log.Logger  // net/http servers' errors, into log
	access   *accessLog
	metrics  *metrics
	stats    *stats        // golden signals for the controller (stats.go, report.go)
	budgets  *budgets      // global rate limits' shares (budgets.go)
	refused  *refusals.Log // inbound mTLS handshakes refused: rate-limited lines, counted
	creds    atomic.Pointer[Credentials]

	credsMu      sync.Mutex
	credsChanged chan struct{} // closed by the next SetCredentials
	applied      atomic.Pointer[appliedConfig]
	health       *appHealth // the application's health: checker, refusals
	tap          tapper     // the taps the controller asked for (tap.go)
	tracer       *tracing.Tracer
	guard        *guard.Tracker // intrusion signals by source, and blocks (protection.go)
	// bytesServed counts the requests the byte-level HTTP/1.1 engine
	// decided on (inbound_bytes.go).
	bytesServed atomic.Uint64

	mu      sync.Mutex // serializes Apply and Close; guards the fields below
	sockets map[string]*socket
	closed  bool
	// gwLimits are a gateway's rate limits, shared by its listeners and
	// kept across configurations while unchanged (gateway.go).
	gwLimits []*ratelimit.Limiter

	draining    sync.WaitGroup     // handlers of removed or replaced listeners
	force       context.Context    // cancelled DrainTimeout after Close starts
	forceCancel context.CancelFunc // cancels force
	closeDone   chan struct{}
}

type appliedConfig struct {
	version uint64
	cfg     *meshapi.ProxyConfig
}

// New returns a proxy with no listeners.
func New(o Options) *Proxy {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Log, nil))
	}
	engine, err := http1Engine(o)
	if err != nil {
		o.Logger.Error(err.Error() + "; serving HTTP/1.1 with " + HTTP1NetHTTP)
		engine = HTTP1NetHTTP
	}
	o.HTTP1Engine = engine
	force, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		opts:        o,
		log:         o.Logger,
		errorLog:    slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		access:      &accessLog{w: o.Log},
		metrics:     newMetrics(),
		stats:       newStats(),
		budgets:     newBudgets(),
		sockets:     make(map[string]*socket),
		force:       force,
		forceCancel: cancel,
		closeDone:   make(chan struct{}),
	}
	p.health = &appHealth{p: p, reporter: o.Health}
	p.guard = guard.New(guard.Options{OnBlock: p.onBlock})
	p.metrics.intrusions(p.guard)
	p.tracer = tracing.New(tracing.Options{Logger: o.Logger, Registerer: p.metrics.reg})
	p.refused = refusals.New(refusals.Options{Prefix: "inbound: ", Logf: func(format string, args ...any) { p.log.Warn(fmt.Sprintf(format, args...)) },
		Counted: func(reason string) { p.metrics.refused.WithLabelValues(reason).Inc() }})
	return p
}

// Logger returns the proxy's event logger (Options.Logger).
func (p *Proxy) Logger() *slog.Logger { return p.log }

// Ready returns nil once the proxy holds a certificate and has applied a
// configuration, or what it still waits for.
func (p *Proxy) Ready() error {
	if p.creds.Load() == nil {
		return errors.New("waiting for a certificate from the controller")
	}
	if p.applied.Load() == nil {
		return errors.New("waiting for the first configuration from the controller")
	}
	return nil
}

// Config returns the configuration applied last and its version, or nil.
func (p *Proxy) Config() (uint64, *meshapi.ProxyConfig) {
	a := p.applied.Load()
	if a == nil {
		return 0, nil
	}
	return a.version, a.cfg
}

// Addr returns the address the listener with key (KeyInbound,
// KeyUpstream(name)) is bound to, or nil if there is none. Useful when the
// configuration asks for port 0.
func (p *Proxy) Addr(key string) net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sockets[key]; s != nil {
		return s.ln.Addr()
	}
	return nil
}

// spec is one listener a configuration asks for.
type spec struct {
	key   string
	addr  string // host:port as configured
	proto meshapi.Protocol
	cfg   *meshapi.ProxyConfig
	in    *meshapi.Inbound  // for KeyInbound
	up    *meshapi.Upstream // for upstream keys
	jwt   *jwtauth.Verifier // for KeyInbound: its end-user token check (nil: none)
	// prot is the listener's defences: the inbound's protection over the
	// config's, over the defaults (protection.go).
	prot protect.Settings
	// For gateway keys (gateway.go): the listener, and its certificate
	// from files (nil: none, or the mesh certificate).
	gw     *meshapi.GatewayListener
	gwCert *fileCert
}

// Apply makes cfg, as version, the proxy's configuration. It either applies
// all of it or, if cfg is invalid or a listener cannot be bound, returns an
// error and leaves the running configuration and listeners as they were.
//
// Listeners are reconciled by key: an unchanged listener keeps its socket
// and its connections; new endpoints, balancing or authorization are
// swapped into it atomically; a new protocol gets a new handler on the same
// socket; a new address gets a new socket. A listener that goes away stops
// accepting, and its open connections are left to finish.
func (p *Proxy) Apply(version uint64, cfg *meshapi.ProxyConfig) error {
	cfg = proto.Clone(cfg).(*meshapi.ProxyConfig)
	if err := p.checkGatewayMode(cfg); err != nil {
		return fmt.Errorf("validating config version %d: %w", version, err)
	}
	specs, err := listenerSpecs(cfg)
	if err != nil {
		return fmt.Errorf("validating config version %d: %w", version, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("applying config: the proxy is closed")
	}

	// Pick a socket for every listener: its own if the address is the same,
	// one that another key gives up at that address, or a new one. Only
	// new sockets can fail, and they are all bound before anything changes.
	byAddr := make(map[string]string)
	for k, s := range p.sockets {
		if !anyPort(s.addr) {
			byAddr[s.addr] = k
		}
		byAddr[s.ln.Addr().String()] = k
	}
	next := make(map[string]*socket, len(specs))
	kept := make(map[string]bool)
	for _, sp := range specs {
		if s := p.sockets[sp.key]; s != nil && s.serves(sp.addr) {
			next[sp.key], kept[sp.key] = s, true
		}
	}
	var fresh []*socket
	for _, sp := range specs {
		if next[sp.key] != nil {
			continue
		}
		if k, ok := byAddr[sp.addr]; ok && !kept[k] {
			next[sp.key], kept[k] = p.sockets[k], true
			continue
		}
		ln, err := Listen(context.Background(), sp.addr, p.opts.ReusePort)
		if err != nil {
			for _, s := range fresh {
				s.ln.Close()
			}
			return fmt.Errorf("binding %s listener on %s: %w; %s", sp.key, sp.addr, err, bindHint(p.opts.ReusePort))
		}
		s := &socket{addr: sp.addr, ln: ln, done: make(chan struct{})}
		fresh = append(fresh, s)
		next[sp.key] = s
	}

	// Nothing below fails.
	p.applied.Store(&appliedConfig{version: version, cfg: cfg})
	p.metrics.version.Set(float64(version))
	p.metrics.info.set(cfg)
	p.stats.bind(cfg)
	for _, sp := range specs {
		s := next[sp.key]
		s.addr = sp.addr
		var old handler
		if b := s.h.Load(); b != nil {
			old = b.h
		}
		if u, ok := old.(updater); ok && u.key() == sp.key && u.protocol() == sp.proto && u.idleTimeout() == idleOf(sp) && u.serverKey() == sp.prot.ServerKey() {
			u.update(sp)
			continue
		}
		s.setHandler(p.newHandler(sp, s.ln.Addr()))
		if old != nil {
			p.drain(old)
		} else {
			go s.serve(p.log)
		}
	}
	for k, s := range p.sockets {
		if !kept[k] {
			s.ln.Close()
			p.drain(s.handler())
		}
	}
	p.sockets = next
	p.health.apply(cfg)
	p.guard.Set(blockingPolicy(cfg))
	if err := p.tracer.Apply(cfg.GetTracing(), tracing.Self{ID: cfg.GetSpiffeId(), Service: cfg.GetService(), Namespace: cfg.GetNamespace()}); err != nil {
		p.log.Warn("tracing: not applied", "err", err)
	}
	return nil
}

// updater is a handler that can take a new spec for the same key and
// protocol without being replaced.
type updater interface {
	handler
	key() string
	protocol() meshapi.Protocol
	// idleTimeout is the idle timeout the handler was built with; a new
	// one needs a new handler (its server and pool fix it at start).
	idleTimeout() time.Duration
	// serverKey is the protection settings the handler's server fixed at
	// start (protect.Settings.ServerKey); new ones need a new handler.
	serverKey() string
	update(sp spec)
}

// idleOf is the idle timeout sp asks for (0: the default).
func idleOf(sp spec) time.Duration {
	return sp.up.GetTimeouts().GetIdle().AsDuration()
}

func (p *Proxy) newHandler(sp spec, addr net.Addr) updater {
	if sp.in != nil {
		return p.newInbound(sp, addr)
	}
	if sp.gw != nil {
		return p.newGateway(sp, addr)
	}
	return p.newOutbound(sp, addr)
}

// drain shuts a handler down in the background, letting its connections
// finish until Close forces them.
func (p *Proxy) drain(h handler) {
	p.draining.Add(1)
	go func() {
		defer p.draining.Done()
		h.shutdown(p.force)
	}()
}

// Close stops every listener and waits up to Options.DrainTimeout for open
// connections to finish, then closes them. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.closeDone
		return nil
	}
	p.closed = true
	socks := p.sockets
	p.sockets = nil
	p.mu.Unlock()

	timer := time.AfterFunc(p.opts.DrainTimeout, p.forceCancel)
	defer timer.Stop()
	var wg sync.WaitGroup
	for _, s := range socks {
		s.ln.Close()
		wg.Go(func() {
			<-s.done
			s.handler().shutdown(p.force)
		})
	}
	wg.Wait()
	p.health.close()
	p.draining.Wait()
	p.tracer.Close(p.force)
	p.forceCancel()
	p.refused.Close()
	close(p.closeDone)
	return nil
}

// anyPort reports whether addr asks for any free port; two such listeners
// never share a socket.
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// listenerSpecs checks cfg and lists the listeners it asks for, inbound
// first, then upstreams in order.
func listenerSpecs(cfg *meshapi.ProxyConfig) ([]spec, error) {
	if cfg == nil {
		return nil, errors.New("the config is empty")
	}
	if err := tracing.Validate(cfg.GetTracing()); err != nil {
		return nil, err
	}
	if err := protect.Validate(cfg.GetProtection()); err != nil {
		return nil, err
	}
	meshProt := protect.FromProto(cfg.GetProtection(), protect.Defaults())
	var specs []spec
	if in := cfg.GetInbound(); in != nil {
		if cfg.GetService() == "" {
			return nil, errors.New("the config names no service; the inbound listener needs it to authorize callers")
		}
		if err := checkPort("inbound.port", in.GetPort(), true); err != nil {
			return nil, err
		}
		if err := checkPort("inbound.app_port", in.GetAppPort(), false); err != nil {
			return nil, err
		}
		if err := checkProtocol("inbound.protocol", in.GetProtocol()); err != nil {
			return nil, err
		}
		for i, r := range in.GetAuthz().GetRules() {
			if r.GetSource() == "" {
				return nil, fmt.Errorf("inbound.authz.rules[%d] has no source; name a service or \"*\"", i)
			}
			if _, err := authz.CompilePermissions(r); err != nil {
				return nil, fmt.Errorf("inbound.authz.rules[%d]: %w", i, err)
			}
		}
		if err := protect.Validate(in.GetProtection()); err != nil {
			return nil, fmt.Errorf("inbound: %w", err)
		}
		if _, err := ratelimit.Compile(in.GetRateLimits(), nil); err != nil {
			return nil, fmt.Errorf("inbound: %w", err)
		}
		jwt, err := jwtauth.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("inbound: %w", err)
		}
		if jwt != nil && in.GetProtocol() == meshapi.Protocol_PROTOCOL_TCP {
			return nil, errors.New("inbound: JWT providers on a TCP inbound, which sees no requests")
		}
		if hc := cfg.GetHealthCheck(); hc != nil {
			if err := health.Validate(hc); err != nil {
				return nil, err
			}
		}
		bind := in.GetBindAddress()
		if bind == "" {
			bind = "0.0.0.0"
		}
		specs = append(specs, spec{key: KeyInbound, addr: hostPort(bind, in.GetPort()), proto: in.GetProtocol(), cfg: cfg, in: in, jwt: jwt,
			prot: protect.FromProto(in.GetProtection(), meshProt)})
	}
	names := make(map[string]bool)
	for i, up := range cfg.GetUpstreams() {
		name := up.GetName()
		if name == "" {
			return nil, fmt.Errorf("upstreams[%d] has no name", i)
		}
		if names[name] {
			return nil, fmt.Errorf("upstream %q appears twice; upstream names must be unique", name)
		}
		names[name] = true
		if _, err := spiffe.Parse(up.GetSpiffeId()); err != nil {
			return nil, fmt.Errorf("upstream %q: %w", name, err)
		}
		if err := checkPort("upstream "+name+" local_port", up.GetLocalPort(), true); err != nil {
			return nil, err
		}
		if err := checkUpstream(up); err != nil {
			return nil, err
		}
		if _, err := newExternal(up, cfg); err != nil {
			return nil, err
		}
		bind := up.GetBindAddress()
		if bind == "" {
			bind = "127.0.0.1"
		}
		prot := meshProt
		if d := up.GetTimeouts().GetIdle().AsDuration(); d > 0 {
			prot.IdleTimeout = d // the upstream's own idle timeout wins
		}
		specs = append(specs, spec{key: KeyUpstream(name), addr: hostPort(bind, up.GetLocalPort()), proto: up.GetProtocol(), cfg: cfg, up: up, prot: prot})
	}
	gws, err := gatewaySpecs(cfg) // gateway.go
	if err != nil {
		return nil, err
	}
	specs = append(specs, gws...)
	seen := make(map[string]string)
	for _, sp := range specs {
		if anyPort(sp.addr) {
			continue
		}
		if other, ok := seen[sp.addr]; ok {
			return nil, fmt.Errorf("listeners %s and %s both want %s; give each its own port", other, sp.key, sp.addr)
		}
		seen[sp.addr] = sp.key
	}
	return specs, nil
}

// checkUpstream checks what an upstream's handler compiles: its protocol,
// balancer, endpoints, mirrors and routes.
func checkUpstream(up *meshapi.Upstream) error {
	name := up.GetName()
	if _, err := spiffe.Parse(up.GetSpiffeId()); err != nil {
		return fmt.Errorf("upstream %q: %w", name, err)
	}
	if err := checkProtocol("upstream "+name+" protocol", up.GetProtocol()); err != nil {
		return err
	}
	if _, ok := meshapi.LB_name[int32(up.GetLb())]; !ok {
		return fmt.Errorf("upstream %q: unknown load balancer %d", name, up.GetLb())
	}
	for j, ep := range up.GetEndpoints() {
		if ep.GetAddress() == "" {
			return fmt.Errorf("upstream %q endpoint %d (%s) has no address", name, j, ep.GetInstanceId())
		}
		if err := checkPort(fmt.Sprintf("upstream %q endpoint %d port", name, j), ep.GetPort(), false); err != nil {
			return err
		}
	}
	for _, r := range up.GetRoutes() {
		if m := r.GetMirror(); m != nil {
			if _, err := spiffe.Parse(m.GetSpiffeId()); err != nil {
				return fmt.Errorf("upstream %q route %q mirror: %w", name, r.GetName(), err)
			}
		}
	}
	if _, err := compileRoutes(up, make([]*endpoint, len(up.GetEndpoints())), func([]*endpoint) balancer { return nil }, nil); err != nil {
		return fmt.Errorf("upstream %q: %w", name, err)
	}
	return nil
}

func checkPort(what string, port uint32, zeroOK bool) error {
	if port > 65535 || (port == 0 && !zeroOK) {
		return fmt.Errorf("%s is %d; want a port from 1 to 65535", what, port)
	}
	return nil
}

func checkProtocol(what string, p meshapi.Protocol) error {
	if _, ok := meshapi.Protocol_name[int32(p)]; !ok {
		return fmt.Errorf("%s: unknown protocol %d", what, p)
	}
	return nil
}

func hostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
