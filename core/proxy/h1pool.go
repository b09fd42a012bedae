package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1pool is a lean HTTP/1.1 client for the hops where the proxy speaks
// HTTP/1.1: to an upstream sidecar over mTLS, and to the local app. The
// handler's own goroutine writes the request and reads the response on a
// pooled keep-alive connection; net/http.Transport spends two goroutines
// per connection and several hand-offs per request on the same job, which
// was most of a sidecar's CPU per request (BENCHMARKS.md).
//
// It takes only the requests it can carry without writing and reading at
// the same time: no body, or a body of known length up to fastBodyMax
// (written into socket buffers whether or not the peer reads it yet).
// Streaming bodies and upgrades go to the fallback transport.
type h1pool struct {
	dial     func(ctx context.Context, addr string) (net.Conn, error)
	fallback http.RoundTripper
	maxIdle  int           // idle connections kept per address
	idleFor  time.Duration // an idle connection older than this is closed

	mu     sync.Mutex
	idle   map[string][]*h1conn // per address, most recently used last
	sweep  *time.Timer          // closes expired idle connections
	closed bool
}

// fastBodyMax is the largest request body the pool writes itself.
const fastBodyMax = 64 << 10

// probeAfter is how long a connection may sit idle before it is checked
// for a close by its peer before use.
const probeAfter = 500 * time.Millisecond

type h1conn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	addr     string
	reused   bool      // it has carried a request before
	idleFrom time.Time // when it went back to the pool
}

// errStale means a reused connection failed before any byte of the
// response came: the peer had closed it while it sat in the pool.
var errStale = errors.New("the pooled connection was closed by the peer")

func newH1Pool(dial func(ctx context.Context, addr string) (net.Conn, error), fallback http.RoundTripper, maxIdle int, idleFor time.Duration) *h1pool {
	return &h1pool{dial: dial, fallback: fallback, maxIdle: maxIdle, idleFor: idleFor, idle: map[string][]*h1conn{}}
}

// takes reports whether the pool carries r itself.
func (p *h1pool) takes(r *http.Request) bool {
	if isUpgrade(r) {
		return false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	return r.ContentLength > 0 && r.ContentLength <= fastBodyMax
}

// RoundTrip sends r on a pooled connection to r.URL.Host, or through the
// fallback transport when the pool does not take it. A request without a
// body that meets a stale connection is sent once more on a new one.
func (p *h1pool) RoundTrip(r *http.Request) (*http.Response, error) {
	if !p.takes(r) {
		return p.fallback.RoundTrip(r)
	}
	ctx := r.Context()
	bodiless := r.Body == nil || r.Body == http.NoBody
	for {
		pc, err := p.get(ctx, r.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := p.exchange(ctx, pc, r)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		if errors.Is(err, errStale) && bodiless && ctx.Err() == nil {
			continue // the next get dials, or takes a younger connection
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

// exchange writes r on pc and reads the response head. The response body
// reads from pc; pc goes back to the pool when the body ends.
func (p *h1pool) exchange(ctx context.Context, pc *h1conn, r *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error, beforeResponse bool) (*http.Response, error) {
		stop()
		if pc.reused && beforeResponse {
			return nil, fmt.Errorf("%w: %w", errStale, err)
		}
		return nil, err
	}
	if err := r.Write(pc.bw); err != nil {
		return fail(fmt.Errorf("writing the request: %w", err), true)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(fmt.Errorf("writing the request: %w", err), true)
	}
	if _, err := pc.br.Peek(1); err != nil {
		return fail(fmt.Errorf("reading the response: %w", err), true)
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(pc.br, r)
		if err != nil {
			return fail(fmt.Errorf("reading the response: %w", err), false)
		}
		// 1xx informational responses (100 Continue, 103 Early Hints)
		// are dropped; the final one follows on the same connection.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Upgrades go to the fallback; a server that switches anyway
		// cannot be followed.
		stop()
		return nil, fmt.Errorf("the server switched protocols (%s) on a request that did not ask to", resp.Header.Get("Upgrade"))
	}
	b := &h1body{p: p, pc: pc, stop: stop, rc: resp.Body, reuse: !resp.Close && !r.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// get returns an idle connection to addr, or dials one.
func (p *h1pool) get(ctx context.Context, addr string) (*h1conn, error) {
	now := time.Now()
	p.mu.Lock()
	for {
		conns := p.idle[addr]
		if len(conns) == 0 {
			break
		}
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		p.idle[addr] = conns[:len(conns)-1]
		if len(p.idle[addr]) == 0 {
			delete(p.idle, addr)
		}
		p.mu.Unlock()
		switch {
		case now.Sub(pc.idleFrom) > p.idleFor:
			pc.c.Close()
		case now.Sub(pc.idleFrom) > probeAfter && (pc.br.Buffered() > 0 || peerClosed(pc.c)):
			pc.c.Close()
		default:
			return pc, nil
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	c, err := p.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &h1conn{c: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10), addr: addr}, nil
}

// put returns a connection whose last response was read to its end.
func (p *h1pool) put(pc *h1conn) {
	pc.reused = true
	pc.idleFrom = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[pc.addr]) >= p.maxIdle {
		pc.c.Close()
		return
	}
	p.idle[pc.addr] = append(p.idle[pc.addr], pc)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.idleFor, p.expire)
	}
}

// expire closes the connections idle for longer than idleFor, and runs
// again while any are left.
func (p *h1pool) expire() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep = nil
	for addr, conns := range p.idle {
		kept := conns[:0]
		for _, pc := range conns {
			if now.Sub(pc.idleFrom) > p.idleFor {
				pc.c.Close()
				continue
			}
			kept = append(kept, pc)
		}
		clear(conns[len(kept):])
		if len(kept) == 0 {
			delete(p.idle, addr)
			continue
		}
		p.idle[addr] = kept
	}
	if len(p.idle) > 0 && !p.closed {
		p.sweep = time.AfterFunc(p.idleFor/2, p.expire)
	}
}

// closeIdle closes every idle connection; connections in use close when
// their response ends.
func (p *h1pool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, conns := range p.idle {
		for _, pc := range conns {
			pc.c.Close()
		}
		delete(p.idle, addr)
	}
	if ci, ok := p.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// close stops pooling: idle connections close now, busy ones when done.
func (p *h1pool) close() {
	p.closeIdle()
	p.mu.Lock()
	p.closed = true
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
}

// h1body is a response body read from a pooled connection. Read to its
// end, it returns the connection to the pool; closed before, it closes it.
type h1body struct {
	p     *h1pool
	pc    *h1conn
	rc    io.ReadCloser
	stop  func() bool // ends the context watch; false if it fired
	reuse bool
	done  bool // finished: at its end, or closed
	eof   bool
	mu    sync.Mutex
}

func (b *h1body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof {
		return 0, io.EOF
	}
	if b.done {
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	}
	return n, err
}

func (b *h1body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.finish(false)
	}
	return nil
}

var errBodyClosed = errors.New("read on a closed response body")

func (b *h1body) finish(atEOF bool) {
	b.done, b.eof = true, atEOF
	if b.stop() && atEOF && b.reuse {
		b.p.put(b.pc)
		return
	}
	b.pc.c.Close()
}
