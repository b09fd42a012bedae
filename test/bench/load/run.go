package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Config is one load run.
type Config struct {
	Proto    string        // http1, h2, grpc, tcp, tcp-new
	Target   string        // host:port, or several separated by commas: connection i goes to the (i mod n)th
	Rate     float64       // requests per second over all connections; 0: closed loop
	Conns    int           // connections (one request in flight on each)
	Duration time.Duration // measured time
	Warmup   time.Duration // time before it, not recorded
	Path     string        // HTTP path; default /1k
	MsgSize  int           // tcp echo message size; default 64
}

// Latency holds a histogram's summary in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

// Result is what a run measured.
type Result struct {
	Proto    string  `json:"proto"`
	Target   string  `json:"target"`
	Rate     float64 `json:"rate"`
	Conns    int     `json:"conns"`
	Seconds  float64 `json:"seconds"`
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	// FirstError is the text of the first error, if any.
	FirstError string `json:"first_error,omitempty"`
	// RPS is completed requests per second in the measured window.
	RPS float64 `json:"rps"`
	// Latency is from the due time (open loop) or the send (closed loop).
	Latency Latency `json:"latency"`
	// Service is from the actual send, for reference: the difference to
	// Latency is time spent waiting for the connection.
	Service Latency `json:"service"`
	// LateP50 and LateP99: how far behind schedule requests left (open
	// loop); the generator's own lag, charged to every candidate alike.
	LateP50 float64 `json:"late_p50_us"`
	LateP99 float64 `json:"late_p99_us"`
}

func summarize(h *Histogram) Latency {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Latency{P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Max: us(h.Max()), Mean: us(h.Mean())}
}

// doer sends one request and waits for its reply.
type doer interface {
	do(ctx context.Context) error
	close()
}

// targets are the addresses of c.Target, in order.
func (c *Config) targets() []string { return strings.Split(c.Target, ",") }

func (c *Config) newDoer(target string) (doer, error) {
	switch c.Proto {
	case "http1":
		return dialHTTP1(target, c.Path)
	case "https1":
		// TLS from outside, as to an ingress gateway: HTTP/1.1 over TLS,
		// the server's certificate not checked (the benchmark's own).
		h := &http1{target: target, tls: true, req: []byte("GET " + c.Path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: weft-load\r\n\r\n")}
		return h, h.redial()
	case "h2":
		return newH2(target, c.Path), nil
	case "grpc":
		return newGRPC(target)
	case "tcp":
		return dialEcho(target, c.MsgSize)
	case "tcp-new":
		return &newConnEcho{target: target, msg: make([]byte, c.MsgSize), buf: make([]byte, c.MsgSize)}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q; want http1, https1, h2, grpc, tcp or tcp-new", c.Proto)
}

type worker struct {
	lat, svc, late *Histogram
	n, errs        uint64
	firstErr       error
}

// Run runs the load and returns what it measured. It fails only when no
// connection can be made at all.
func Run(ctx context.Context, c Config) (*Result, error) {
	if c.Conns <= 0 {
		c.Conns = 1
	}
	if c.Path == "" {
		c.Path = "/1k"
	}
	if c.MsgSize <= 0 {
		c.MsgSize = 64
	}
	doers := make([]doer, c.Conns)
	targets := c.targets()
	for i := range doers {
		target := targets[i%len(targets)]
		d, err := c.newDoer(target)
		if err != nil {
			for _, o := range doers[:i] {
				o.close()
			}
			return nil, fmt.Errorf("connecting to %s: %w", target, err)
		}
		doers[i] = d
	}
	start := time.Now().Add(50 * time.Millisecond)
	measureFrom := start.Add(c.Warmup)
	end := measureFrom.Add(c.Duration)
	sched := Schedule{Start: start, Rate: c.Rate, Conns: c.Conns}
	workers := make([]*worker, c.Conns)
	var wg sync.WaitGroup
	for i := range c.Conns {
		w := &worker{lat: NewHistogram(), svc: NewHistogram(), late: NewHistogram()}
		workers[i] = w
		wg.Go(func() { w.loop(ctx, &c, doers[i], sched, i, measureFrom, end) })
	}
	wg.Wait()
	for _, d := range doers {
		d.close()
	}
	lat, svc, late := NewHistogram(), NewHistogram(), NewHistogram()
	r := &Result{Proto: c.Proto, Target: c.Target, Rate: c.Rate, Conns: c.Conns, Seconds: c.Duration.Seconds()}
	for _, w := range workers {
		lat.Merge(w.lat)
		svc.Merge(w.svc)
		late.Merge(w.late)
		r.Requests += w.n
		r.Errors += w.errs
		if w.firstErr != nil && r.FirstError == "" {
			r.FirstError = w.firstErr.Error()
		}
	}
	r.RPS = float64(r.Requests) / c.Duration.Seconds()
	r.Latency, r.Service = summarize(lat), summarize(svc)
	r.LateP50 = float64(late.Quantile(0.5)) / 1e3
	r.LateP99 = float64(late.Quantile(0.99)) / 1e3
	return r, nil
}

func (w *worker) loop(ctx context.Context, c *Config, d doer, s Schedule, conn int, measureFrom, end time.Time) {
	for j := 0; ctx.Err() == nil; j++ {
		var due time.Time
		if c.Rate > 0 {
			due = s.Due(conn, j)
			if !due.Before(end) {
				return
			}
			waitUntil(due)
		}
		sent := time.Now()
		if c.Rate <= 0 {
			if !sent.Before(end) {
				return
			}
			due = sent
			if sent.Before(measureFrom) {
				// Closed loop before the window: warm up without
				// recording.
				if err := d.do(ctx); err != nil {
					time.Sleep(time.Millisecond)
				}
				continue
			}
		}
		err := d.do(ctx)
		done := time.Now()
		if due.Before(measureFrom) || done.After(end.Add(time.Second)) {
			continue
		}
		if err != nil {
			w.errs++
			if w.firstErr == nil {
				w.firstErr = err
			}
			if c.Rate <= 0 {
				time.Sleep(time.Millisecond) // don't spin on a dead target
			}
			continue
		}
		w.n++
		w.lat.Record(done.Sub(due))
		w.svc.Record(done.Sub(sent))
		w.late.Record(sent.Sub(due))
	}
}

// spinFor is how long before a due time the generator stops sleeping and
// yields in a loop instead: timer wake-ups are late by tens to hundreds of
// microseconds, which would be charged to every candidate as latency.
const spinFor = 300 * time.Microsecond

func waitUntil(due time.Time) {
	if wait := time.Until(due) - spinFor; wait > 0 {
		time.Sleep(wait)
	}
	for time.Now().Before(due) {
		runtime.Gosched()
	}
}

// http1 is one keep-alive HTTP/1.1 connection with a prebuilt request.
type http1 struct {
	target string
	tls    bool // https1
	req    []byte
	conn   net.Conn
	br     *bufio.Reader
}

func dialHTTP1(target, path string) (*http1, error) {
	h := &http1{target: target, req: []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: weft-load\r\n\r\n")}
	return h, h.redial()
}

func (h *http1) redial() error {
	if h.conn != nil {
		h.conn.Close()
	}
	var c net.Conn
	var err error
	if h.tls {
		c, err = tls.Dial("tcp", h.target, &tls.Config{InsecureSkipVerify: true, ServerName: "bench", NextProtos: []string{"http/1.1"}})
	} else {
		c, err = net.Dial("tcp", h.target)
	}
	if err != nil {
		h.conn = nil
		return err
	}
	h.conn, h.br = c, bufio.NewReaderSize(c, 16<<10)
	return nil
}

func (h *http1) do(context.Context) error {
	if h.conn == nil {
		if err := h.redial(); err != nil {
			return err
		}
	}
	err := h.roundTrip()
	if err != nil {
		h.redial() // next request on a fresh connection
	}
	return err
}

func (h *http1) roundTrip() error {
	if _, err := h.conn.Write(h.req); err != nil {
		return err
	}
	status, closing, err := readResponse(h.br)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("HTTP status %d", status)
	}
	if closing {
		return errors.New("server closed the keep-alive connection")
	}
	return nil
}

func (h *http1) close() {
	if h.conn != nil {
		h.conn.Close()
	}
}

// h2 is one h2c connection (prior knowledge) of its own.
type h2 struct {
	client *http.Client
	tr     *http.Transport
	url    string
}

func newH2(target, path string) *h2 {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, MaxConnsPerHost: 1, DisableCompression: true}
	return &h2{client: &http.Client{Transport: tr}, tr: tr, url: "http://" + target + path}
}

func (h *h2) do(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	return err
}

func (h *h2) close() { h.tr.CloseIdleConnections() }

// grpcUnary calls the standard health service's Check on a connection of
// its own.
type grpcUnary struct {
	cc *grpc.ClientConn
	hc healthpb.HealthClient
}

func newGRPC(target string) (*grpcUnary, error) {
	cc, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
	if err != nil {
		return nil, err
	}
	cc.Connect()
	return &grpcUnary{cc: cc, hc: healthpb.NewHealthClient(cc)}, nil
}

func (g *grpcUnary) do(ctx context.Context) error {
	r, err := g.hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if r.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %v", r.Status)
	}
	return nil
}

func (g *grpcUnary) close() { g.cc.Close() }

// echo writes a message and reads it back on one connection.
type echo struct {
	target   string
	conn     net.Conn
	msg, buf []byte
}

func dialEcho(target string, size int) (*echo, error) {
	e := &echo{target: target, msg: bytes.Repeat([]byte("w"), size), buf: make([]byte, size)}
	c, err := net.Dial("tcp", target)
	if err != nil {
		return nil, err
	}
	e.conn = c
	return e, nil
}

func (e *echo) do(context.Context) error {
	if e.conn == nil {
		c, err := net.Dial("tcp", e.target)
		if err != nil {
			return err
		}
		e.conn = c
	}
	err := echoOnce(e.conn, e.msg, e.buf)
	if err != nil {
		e.conn.Close()
		e.conn = nil
	}
	return err
}

func echoOnce(c net.Conn, msg, buf []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if !bytes.Equal(msg, buf) {
		return errors.New("echo differs from the message")
	}
	return nil
}

func (e *echo) close() {
	if e.conn != nil {
		e.conn.Close()
	}
}

// newConnEcho opens a connection per request, echoes one message, closes.
type newConnEcho struct {
	target   string
	msg, buf []byte
}

func (e *newConnEcho) do(context.Context) error {
	c, err := net.Dial("tcp", e.target)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoOnce(c, e.msg, e.buf)
}

func (e *newConnEcho) close() {}

// HoldIdleTCP opens n TCP connections, echoes one message on each, and
// returns them open and idle; close them with the returned function.
func HoldIdleTCP(target string, n int) (func(), error) {
	conns := make([]*echo, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.close()
		}
	}
	for i := range n {
		e, err := dialEcho(target, 64)
		if err == nil {
			err = echoOnce(e.conn, e.msg, e.buf)
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("idle connection %d of %d: %w", i+1, n, err)
		}
		conns = append(conns, e)
	}
	return closeAll, nil
}

// HoldIdle opens n keep-alive HTTP/1.1 connections, makes one request on
// each, and returns them open and idle; close them with the returned
// function.
func HoldIdle(target string, n int) (func(), error) {
	conns := make([]*http1, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.close()
		}
	}
	for i := range n {
		h, err := dialHTTP1(target, "/1k")
		if err == nil {
			err = h.roundTrip()
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("idle connection %d of %d: %w", i+1, n, err)
		}
		conns = append(conns, h)
	}
	return closeAll, nil
}
