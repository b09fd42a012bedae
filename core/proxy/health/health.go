package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/core/meshapi"
)

// Defaults for a check that leaves a field unset.
const (
	DefaultInterval  = 10 * time.Second
	DefaultTimeout   = 2 * time.Second
	DefaultThreshold = 1

	minInterval = 10 * time.Millisecond
)

// State is what the checker knows of the application.
type State struct {
	// Checked is false until the first probe has finished. The app
	// starts healthy: it goes down after unhealthy_threshold failed
	// probes in a row (or a refused connection, Fail).
	Checked bool `json:"checked"`
	Healthy bool `json:"healthy"`
	// Reason says why the app is down (the last failed probe, or the
	// refused connection that took it down), or what passed.
	Reason string `json:"reason"`
	// Since is when Healthy took its current value.
	Since time.Time `json:"since"`
	// LastCheck is when the last probe finished.
	LastCheck time.Time `json:"last_check"`
	// Failures and Successes are the probes in a row that failed or
	// passed.
	Failures  int `json:"consecutive_failures"`
	Successes int `json:"consecutive_successes"`
}

// Down reports whether the application is known to be failing.
func (s State) Down() bool { return !s.Healthy }

// Checker probes one application address on its own timer. Create it with
// New, start it with Start, stop it with Stop. Its methods are safe for
// concurrent use.
type Checker struct {
	cfg       *meshapi.HealthCheck
	addr      string
	proto     meshapi.Protocol
	interval  time.Duration
	timeout   time.Duration
	unhealthy int
	healthy   int
	onChange  func(State)

	mu    sync.Mutex
	state State
	now   func() time.Time

	http   *http.Client
	conn   *grpc.ClientConn
	stop   context.CancelFunc
	done   chan struct{}
	kick   chan struct{}
	closed bool
}

// New returns a checker of the application at addr (host:port) as cfg
// says. proto is the inbound's protocol: an HTTP check speaks HTTP/2
// cleartext to an HTTP2 or GRPC application, HTTP/1.1 otherwise. onChange
// is called (from the checker's goroutine, or from Fail's caller) with the
// new state every time the app goes up or down, and after the first probe.
func New(cfg *meshapi.HealthCheck, addr string, proto meshapi.Protocol, onChange func(State)) (*Checker, error) {
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	c := &Checker{
		cfg:       cfg,
		addr:      addr,
		proto:     proto,
		interval:  orDefault(cfg.GetInterval().AsDuration(), DefaultInterval),
		timeout:   orDefault(cfg.GetTimeout().AsDuration(), DefaultTimeout),
		unhealthy: max(int(cfg.GetUnhealthyThreshold()), DefaultThreshold),
		healthy:   max(int(cfg.GetHealthyThreshold()), DefaultThreshold),
		onChange:  onChange,
		now:       time.Now,
		state:     State{Healthy: true, Reason: "not checked yet"},
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
	}
	// A configuration not from the compiler could ask for a probe every
	// nanosecond; the policy language's floor is 100ms.
	c.interval = max(c.interval, minInterval)
	if c.onChange == nil {
		c.onChange = func(State) {}
	}
	switch cfg.GetKind() {
	case meshapi.HealthCheckKind_HEALTH_CHECK_HTTP:
		d := &net.Dialer{Timeout: c.timeout}
		tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true, DisableCompression: true, Proxy: nil}
		tr.Protocols = new(http.Protocols)
		if proto == meshapi.Protocol_PROTOCOL_HTTP2 || proto == meshapi.Protocol_PROTOCOL_GRPC {
			tr.Protocols.SetUnencryptedHTTP2(true)
		} else {
			tr.Protocols.SetHTTP1(true)
		}
		c.http = &http.Client{Transport: tr, Timeout: c.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	case meshapi.HealthCheckKind_HEALTH_CHECK_GRPC:
		conn, err := c.dialGRPC()
		if err != nil {
			return nil, err
		}
		c.conn = conn
	}
	return c, nil
}

// Validate checks a configuration the way the sidecar applies it.
func Validate(cfg *meshapi.HealthCheck) error {
	switch cfg.GetKind() {
	case meshapi.HealthCheckKind_HEALTH_CHECK_HTTP:
		p := cfg.GetHttpPath()
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\r\n#") {
			return fmt.Errorf("health_check: http path %q must begin with \"/\" and hold no space or \"#\"", p)
		}
		if s := cfg.GetExpectStatus(); s != 0 && (s < 100 || s > 599) {
			return fmt.Errorf("health_check: expect_status %d is not an HTTP status (100 to 599)", s)
		}
	case meshapi.HealthCheckKind_HEALTH_CHECK_GRPC, meshapi.HealthCheckKind_HEALTH_CHECK_TCP:
	default:
		return fmt.Errorf("health_check: unknown kind %d; want http, grpc or tcp", cfg.GetKind())
	}
	if cfg.GetInterval().AsDuration() < 0 || cfg.GetTimeout().AsDuration() < 0 {
		return fmt.Errorf("health_check: negative interval or timeout")
	}
	if cfg.GetUnhealthyThreshold() > 100 || cfg.GetHealthyThreshold() > 100 {
		return fmt.Errorf("health_check: thresholds go up to 100")
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Config is the configuration the checker runs.
func (c *Checker) Config() *meshapi.HealthCheck { return c.cfg }

// Addr is the address the checker probes.
func (c *Checker) Addr() string { return c.addr }

// Protocol is the inbound protocol the checker was built for.
func (c *Checker) Protocol() meshapi.Protocol { return c.proto }

// Start runs the first probe at once, then one every interval, until Stop.
func (c *Checker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go c.run(ctx)
}

// Stop ends the checker and waits for its goroutine. It is idempotent.
func (c *Checker) Stop() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	if c.stop != nil {
		c.stop()
		<-c.done
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
}

// State returns the current state.
func (c *Checker) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Fail takes the app down at once, whatever the thresholds say: the
// inbound saw it refuse a connection. It needs healthy_threshold passing
// probes in a row to come back; the next probe is run without waiting
// out the interval.
func (c *Checker) Fail(reason string) {
	c.mu.Lock()
	changed := !c.state.Down()
	now := c.now()
	c.state.Failures = max(c.state.Failures, c.unhealthy)
	c.state.Successes = 0
	c.state.Reason = reason
	if changed {
		c.state.Healthy, c.state.Since = false, now
	}
	st := c.state
	c.mu.Unlock()
	if changed {
		c.onChange(st)
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *Checker) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		err := c.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		c.record(err)
		t.Reset(c.interval)
	}
}

// record counts one probe's result and reports a change (and the first
// result).
func (c *Checker) record(err error) {
	c.mu.Lock()
	s := &c.state
	first := !s.Checked
	was := s.Healthy
	s.Checked = true
	s.LastCheck = c.now()
	if err != nil {
		s.Failures++
		s.Successes = 0
		s.Reason = err.Error()
		if s.Healthy && s.Failures >= c.unhealthy {
			s.Healthy = false
		}
	} else {
		s.Successes++
		s.Failures = 0
		if !s.Healthy && s.Successes >= c.healthy {
			s.Healthy = true
		}
		if s.Healthy {
			s.Reason = "passing"
		}
	}
	changed := was != s.Healthy
	if changed {
		s.Since = s.LastCheck
	}
	st := *s
	c.mu.Unlock()
	if changed || first {
		c.onChange(st)
	}
}

// probe runs one check, bounded by the timeout.
func (c *Checker) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	switch c.cfg.GetKind() {
	case meshapi.HealthCheckKind_HEALTH_CHECK_HTTP:
		return c.probeHTTP(ctx)
	case meshapi.HealthCheckKind_HEALTH_CHECK_GRPC:
		return c.probeGRPC(ctx)
	}
	return c.probeTCP(ctx)
}

func (c *Checker) probeTCP(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("tcp check: connecting to %s: %w", c.addr, err)
	}
	conn.Close()
	return nil
}

func (c *Checker) probeHTTP(ctx context.Context) error {
	url := "http://" + c.addr + c.cfg.GetHttpPath()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("http check: building GET %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "weft-proxy-health-check")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("http check: GET %s: %w", url, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	want := int(c.cfg.GetExpectStatus())
	if (want == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299)) || (want != 0 && resp.StatusCode != want) {
		exp := "a 2xx status"
		if want != 0 {
			exp = fmt.Sprintf("status %d", want)
		}
		return fmt.Errorf("http check: GET %s answered %d, want %s", url, resp.StatusCode, exp)
	}
	return nil
}

// dialGRPC sets up the connection the gRPC probes use (it connects on
// the first call).
func (c *Checker) dialGRPC() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("passthrough:///"+c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
	if err != nil {
		return nil, fmt.Errorf("setting up the gRPC health check of %s: %w", c.addr, err)
	}
	return conn, nil
}

func (c *Checker) probeGRPC(ctx context.Context) error {
	resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: c.cfg.GetGrpcService()})
	if err != nil {
		// A connection that failed waits out gRPC's reconnect backoff
		// (up to two minutes) before it tries again: the next probe gets a
		// new one, so an app that is back is seen at once.
		if conn, derr := c.dialGRPC(); derr == nil {
			c.mu.Lock()
			old := c.conn
			c.conn = conn
			c.mu.Unlock()
			old.Close()
		}
		return fmt.Errorf("grpc check of %s (service %q): %w", c.addr, c.cfg.GetGrpcService(), err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc check of %s (service %q): status %s, want SERVING", c.addr, c.cfg.GetGrpcService(), s)
	}
	return nil
}
