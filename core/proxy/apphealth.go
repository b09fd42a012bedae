package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/health"
	"github.com/weftmesh/weft/core/proxy/retry"
)

// HeaderUnavailable is the header of the retryable signal: a callee's
// sidecar sets it, to ValueUnavailableApp, on the 503 (gRPC: UNAVAILABLE)
// it answers when its application cannot take the request: the app
// refused the connection, its health check says it is down, or (for GET,
// HEAD, OPTIONS and TRACE only) it closed the connection before any byte
// of a response. The request reached no application (but in that last
// case, where it may have and repeating it is safe), so a caller's sidecar
// sends it to another endpoint, whatever its method. The inbound removes
// the header from every response of an application, so an app cannot
// forge the signal.
const (
	HeaderUnavailable   = "X-Weft-Unavailable"
	ValueUnavailableApp = "app"
)

// HealthReporter hears of the application's health as its sidecar sees
// it: every change of the health check's state (and its first result), a
// connection the app refused, and the app answering again after that
// when no check is configured. ReportHealth must not block: it is called
// from the request path and the checker's goroutine, once per change.
type HealthReporter interface {
	ReportHealth(healthy bool, reason string)
}

// appHealth is what the sidecar knows of its own application: the active
// checker the configuration asks for (if any), and, without one, whether
// the inbound last saw the app refuse a connection.
type appHealth struct {
	p       *Proxy
	checker atomic.Pointer[health.Checker]
	// refusedNoCheck: no checker, and the app refused a connection since
	// it last answered.
	refusedNoCheck atomic.Bool

	mu       sync.Mutex // serializes reports; guards the fields below
	reported bool
	healthy  bool
	reason   string
	reporter HealthReporter // Options.Health, or SetHealthReporter's
}

// report hands a change to the reporter, once per change, and logs it.
func (a *appHealth) report(healthy bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reportLocked(healthy, reason)
}

func (a *appHealth) reportLocked(healthy bool, reason string) {
	if a.reported && a.healthy == healthy {
		return
	}
	first := !a.reported
	a.reported, a.healthy, a.reason = true, healthy, reason
	a.p.metrics.appHealthy.Set(b2f(healthy))
	if healthy {
		if !first {
			a.p.log.Info("health: the application is up again", "reason", reason)
		}
	} else {
		a.p.log.Warn("health: the application is down; new requests get 503 with "+HeaderUnavailable+": "+ValueUnavailableApp, "reason", reason)
	}
	if a.reporter != nil {
		a.reporter.ReportHealth(healthy, reason)
	}
}

// SetHealthReporter makes r the proxy's HealthReporter (replacing
// Options.Health) and hands it the last state reported, if any. NewClient
// calls it with the controller client when that client can carry health
// reports.
func (p *Proxy) SetHealthReporter(r HealthReporter) {
	a := p.health
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reporter = r
	if r != nil && a.reported {
		r.ReportHealth(a.healthy, a.reason)
	}
}

// down reports whether the checker says the app is down, and why.
func (a *appHealth) down() (bool, string) {
	c := a.checker.Load()
	if c == nil {
		return false, ""
	}
	st := c.State()
	return st.Down(), st.Reason
}

// refused: the inbound could not connect to the app at addr. It is down
// at once. Without a checker, a prober dials addr every
// passiveProbeInterval until the app accepts, so that an app the
// controller has taken out of every caller's endpoints on this report,
// and that gets no requests to answer, is reported up again.
func (a *appHealth) refused(addr, reason string) {
	if c := a.checker.Load(); c != nil {
		c.Fail(reason)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.refusedNoCheck.Load() {
		a.refusedNoCheck.Store(true)
		a.reportLocked(false, reason)
		go a.probeUntilBack(addr)
	}
}

// passiveProbeInterval is how often an app that refused a connection, with
// no health check configured, is dialed until it accepts.
const passiveProbeInterval = time.Second

func (a *appHealth) probeUntilBack(addr string) {
	t := time.NewTicker(passiveProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-a.p.force.Done(): // the proxy is closing
			return
		case <-t.C:
		}
		if !a.refusedNoCheck.Load() || a.checker.Load() != nil {
			return // answered meanwhile, or a checker took over
		}
		c, err := net.DialTimeout("tcp", addr, a.p.opts.DialTimeout)
		if err != nil {
			continue
		}
		c.Close()
		a.back("the application accepts connections again at " + addr)
		return
	}
}

// answered: the app answered a request. Without a checker that brings it
// back after a refusal.
func (a *appHealth) answered() {
	if a.refusedNoCheck.Load() {
		a.back("the application answered a request")
	}
}

// back reports the app up after a refusal, when no checker decides.
func (a *appHealth) back(reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refusedNoCheck.Load() && a.checker.Load() == nil {
		a.refusedNoCheck.Store(false)
		a.reportLocked(true, reason)
	}
}

// apply starts, replaces or stops the checker as cfg asks. Called by
// Apply, under p.mu, after cfg was validated.
func (a *appHealth) apply(cfg *meshapi.ProxyConfig) {
	hc := cfg.GetHealthCheck()
	in := cfg.GetInbound()
	old := a.checker.Load()
	if hc == nil || in == nil {
		if old != nil {
			a.checker.Store(nil)
			old.Stop()
			a.report(true, "no health check configured")
		}
		return
	}
	addr := hostPort(appHost(in.GetAppAddress()), in.GetAppPort())
	if old != nil && proto.Equal(old.Config(), hc) && old.Addr() == addr && old.Protocol() == in.GetProtocol() {
		return
	}
	var c *health.Checker
	c, err := health.New(hc, addr, in.GetProtocol(), func(st health.State) {
		if a.checker.Load() != c {
			return // replaced
		}
		if !st.Healthy {
			go a.p.closeAppConns() // Apply may hold p.mu, waiting for this checker to stop
		}
		a.report(st.Healthy, st.Reason)
	})
	if err != nil { // checked by listenerSpecs
		a.p.log.Error("health: not checking the application", "err", err)
		return
	}
	a.refusedNoCheck.Store(false)
	a.checker.Store(c)
	if old != nil {
		old.Stop()
	}
	c.Start()
}

// state is what /health shows.
func (a *appHealth) state() healthView {
	c := a.checker.Load()
	if c == nil {
		v := healthView{Healthy: !a.refusedNoCheck.Load()}
		if !v.Healthy {
			v.Reason = "the application refused a connection"
		}
		return v
	}
	st := c.State()
	return healthView{Check: c.Config().GetKind().String(), Address: c.Addr(), Healthy: st.Healthy, Reason: st.Reason, State: &st}
}

// healthView is the JSON of GET /health on the admin port.
type healthView struct {
	// Check is the kind of active check (HEALTH_CHECK_HTTP, ...); "" when
	// none is configured.
	Check   string        `json:"check"`
	Address string        `json:"address,omitempty"`
	Healthy bool          `json:"healthy"`
	Reason  string        `json:"reason,omitempty"`
	State   *health.State `json:"state,omitempty"`
}

func (a *appHealth) close() {
	if c := a.checker.Swap(nil); c != nil {
		c.Stop()
	}
}

// closeAppConns drops the idle connections to the app when it goes
// down: they would meet a dead peer.
func (p *Proxy) closeAppConns() {
	p.mu.Lock()
	s := p.sockets[KeyInbound]
	p.mu.Unlock()
	if s == nil {
		return
	}
	if in, ok := s.handler().(*inbound); ok {
		if in.app != nil {
			in.app.CloseIdleConnections()
		}
		if in.h1 != nil {
			in.h1.CloseIdle()
		}
	}
}

// appDialError is a failure to connect to the local application: nothing
// of the request reached it.
type appDialError struct {
	addr string
	err  error
}

func (e *appDialError) Error() string { return fmt.Sprintf("dialing %s: %v", e.addr, e.err) }
func (e *appDialError) Unwrap() error { return e.err }

// drainForReplay reads what is left of a request body (up to
// retry.MaxBody, for at most half a second) before the signal goes out:
// once the callee has read the body to its end, the caller's sidecar has
// too, and holds all of it to send to another endpoint. A larger body
// cannot be replayed, so it is not read. The reverse proxy hands its
// error handler a request whose body it has closed, so the body read is
// the one serveHTTP kept in the statusWriter.
func drainForReplay(w http.ResponseWriter, r *http.Request) {
	body := r.Body
	if sw, ok := w.(*statusWriter); ok && sw.reqBody != nil {
		body = sw.reqBody
	}
	if body == nil || body == http.NoBody || r.ContentLength > retry.MaxBody {
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(body, retry.MaxBody+1))
	rc.SetReadDeadline(time.Time{})
}

// writeUnavailable answers with the retryable signal.
func writeUnavailable(w http.ResponseWriter, r *http.Request, msg string) {
	drainForReplay(w, r)
	w.Header().Set(HeaderUnavailable, ValueUnavailableApp)
	if isGRPC(r) {
		writeGRPCError(w, grpcUnavailable, msg)
		return
	}
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// stripSignal removes the signal's header from an application's response:
// only the sidecar may send it.
func stripSignal(resp *http.Response) {
	resp.Header.Del(HeaderUnavailable)
	resp.Header.Del(HeaderDenied) // denied.go
	if resp.Trailer != nil {
		resp.Trailer.Del(HeaderUnavailable)
		resp.Trailer.Del(HeaderDenied)
	}
}

// isAppUnavailable reports whether resp is a callee sidecar's signal.
func isAppUnavailable(resp *http.Response) bool {
	if resp.Header.Get(HeaderUnavailable) != ValueUnavailableApp {
		return false
	}
	return resp.StatusCode == http.StatusServiceUnavailable || resp.Header.Get("Grpc-Status") == "14"
}

// safeToRepeat: methods a request of which may run twice (RFC 9110's
// safe methods), without a body.
func safeToRepeat(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return r.ContentLength == 0
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
