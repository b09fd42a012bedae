package h1pool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Pool is a lean HTTP/1.1 client for the hops where the proxy speaks
// HTTP/1.1: to an upstream sidecar over mTLS, and to the local app. The
// handler's own goroutine writes the request and reads the response on a
// pooled keep-alive connection; net/http.Transport spends two goroutines
// per connection and several hand-offs per request on the same job, which
// was most of a sidecar's CPU per request (BENCHMARKS.md).
//
// It takes only the requests it can carry without writing and reading at
// the same time: no body, or a body of known length up to FastBodyMax
// (written into socket buffers whether or not the peer reads it yet).
// Streaming bodies and upgrades go to the fallback transport.
type Pool struct {
	dial     func(ctx context.Context, addr string) (net.Conn, error)
	fallback http.RoundTripper
	maxIdle  int           // idle connections kept per address
	idleFor  time.Duration // an idle connection older than this is closed
	limit    ConnLimit     // nil: no cap on open connections

	mu     sync.Mutex
	idle   map[string][]*h1conn // per address, most recently used last
	open   int                  // connections open, idle or busy, all addresses
	freed  chan struct{}        // closed when a connection goes idle or away, if someone waits
	sweep  *time.Timer          // closes expired idle connections
	closed bool
}

// ConnLimit caps the pool's open connections: in the sidecar, the
// upstream's circuit breaker (max_connections, max_pending), read afresh
// for every connection so a new configuration applies at once.
type ConnLimit interface {
	// MaxConns is the cap on open connections; 0 for none.
	MaxConns() int
	// Queue takes a place among the requests waiting for a connection;
	// false when every place is taken. leave gives it back.
	Queue() (leave func(), ok bool)
}

// ErrConnOverflow means every connection the cap allows is busy and every
// place in the queue taken.
var ErrConnOverflow = errors.New("max_connections reached and max_pending requests waiting")

// FastBodyMax is the largest request body the pool writes itself.
const FastBodyMax = 64 << 10

// probeAfter is how long a connection may sit idle before it is checked
// for a close by its peer before use.
const probeAfter = 500 * time.Millisecond

type h1conn struct {
	c        net.Conn
	sent     int64 // bytes of the current request the connection took
	br       *bufio.Reader
	bw       *bufio.Writer
	addr     string
	reused   bool      // it has carried a request before
	idleFrom time.Time // when it went back to the pool
}

// ErrStale means a reused connection failed before any byte of the
// response came: the peer had closed it while it sat in the pool.
var ErrStale = errors.New("the pooled connection was closed by the peer")

// ErrNotSent means the connection failed before it took any byte of the
// request (a write on a connection the peer had reset): nothing of it
// reached the peer, so it may go to any peer again, whatever its method.
// The pool does not resend it itself (the body is gone); its caller may,
// with the body it kept.
var ErrNotSent = errors.New("no byte of the request was sent")

// sentCounter counts what the connection takes of a request.
type sentCounter struct{ pc *h1conn }

func (w sentCounter) Write(b []byte) (int, error) {
	n, err := w.pc.c.Write(b)
	w.pc.sent += int64(n)
	return n, err
}

// New returns a pool that dials with dial, hands what it does not take
// (Takes) to fallback, keeps up to maxIdle idle connections per address
// for idleFor, and caps its open connections with limit (nil: no cap).
func New(dial func(ctx context.Context, addr string) (net.Conn, error), fallback http.RoundTripper, maxIdle int, idleFor time.Duration, limit ConnLimit) *Pool {
	return &Pool{dial: dial, fallback: fallback, maxIdle: maxIdle, idleFor: idleFor, limit: limit, idle: map[string][]*h1conn{}}
}

// Takes reports whether the pool carries r itself.
func (p *Pool) Takes(r *http.Request) bool {
	if IsUpgrade(r) {
		return false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	return r.ContentLength > 0 && r.ContentLength <= FastBodyMax
}

// RoundTrip sends r on a pooled connection to r.URL.Host, or through the
// fallback transport when the pool does not take it (with a body that,
// once ended, is not read again: withEndedBody). A replayable request
// (resendable) that meets a stale connection is sent once more on a new
// one.
func (p *Pool) RoundTrip(r *http.Request) (*http.Response, error) {
	if !p.Takes(r) {
		return p.fallback.RoundTrip(withEndedBody(r))
	}
	ctx := r.Context()
	resend := resendable(r)
	for {
		pc, err := p.get(ctx, r.URL.Host, !resend)
		if err != nil {
			return nil, err
		}
		pc.buffered()
		resp, err := p.exchange(ctx, pc, r)
		if err == nil {
			return resp, nil
		}
		p.discard(pc)
		if errors.Is(err, ErrStale) && resend && ctx.Err() == nil {
			continue // the next get dials, or takes a younger connection
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

// withEndedBody is r for the fallback transport, its body read through an
// endedBody. net/http.Transport writes a body in a goroutine of its own
// and, past a declared length, reads it once more to see that nothing
// follows. The request comes from a handler of a net/http server, which
// closes the body once it was read to its end and the handler's response
// headers go out: when the response came back before that extra read (it
// can, the peer had every byte), the read fails with
// http.ErrBodyReadAfterClose, the transport takes it for a broken request
// and closes the connection, and the response it is delivering is cut off
// (a 200 with a short body).
func withEndedBody(r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = &endedBody{ReadCloser: r.Body}
	return r2
}

// endedBody answers every read after the io.EOF of its body with io.EOF
// itself, without reading the body again. Close closes the body.
type endedBody struct {
	io.ReadCloser
	eof bool // read by the one goroutine that reads
}

func (b *endedBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// resendable reports whether r may be sent again after a pooled
// connection failed under it before any byte of the response came. The
// peer may have read it and acted on it before it closed, so only a
// request that is safe to repeat goes again, as net/http decides: GET,
// HEAD, OPTIONS or TRACE, or one with an Idempotency-Key (or
// X-Idempotency-Key) header; and only without a body, whose bytes are
// gone once sent.
func resendable(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody {
		return false
	}
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := r.Header["Idempotency-Key"]
	if !ok {
		_, ok = r.Header["X-Idempotency-Key"]
	}
	return ok
}

// exchange writes r on pc and reads the response head. The response body
// reads from pc; pc goes back to the pool when the body ends.
func (p *Pool) exchange(ctx context.Context, pc *h1conn, r *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
	pc.sent = 0
	fail := func(err error, beforeResponse bool) (*http.Response, error) {
		stop()
		if pc.sent == 0 && beforeResponse {
			err = fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		if pc.reused && beforeResponse {
			return nil, fmt.Errorf("%w: %w", ErrStale, err)
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

// get returns an idle connection to addr, or dials one. At the cap on
// open connections it closes an idle one to another address to make room,
// or waits, as one of the queued requests, for one to go idle or away.
// probe: look at every idle connection for a close by its peer before
// use, however short its idle time (for a request that cannot be sent
// again).
func (p *Pool) get(ctx context.Context, addr string, probe bool) (*h1conn, error) {
	var leave func()
	defer func() {
		if leave != nil {
			leave()
		}
	}()
	for {
		if pc := p.takeIdle(addr, probe); pc != nil {
			return pc, nil
		}
		p.mu.Lock()
		if max := p.maxConns(); max == 0 || p.open < max {
			p.open++
			p.mu.Unlock()
			break
		}
		if victim := p.oldestIdleLocked(); victim != nil {
			p.discardLocked(victim)
			p.mu.Unlock()
			continue
		}
		if p.freed == nil {
			p.freed = make(chan struct{})
		}
		freed := p.freed
		p.mu.Unlock()
		if leave == nil {
			var ok bool
			if leave, ok = p.limit.Queue(); !ok {
				leave = nil
				return nil, ErrConnOverflow
			}
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := p.dial(ctx, addr)
	if err != nil {
		p.mu.Lock()
		p.open--
		p.signalLocked()
		p.mu.Unlock()
		return nil, err
	}
	return &h1conn{c: c, addr: addr}, nil
}

// buffered gives pc the reader and writer RoundTrip speaks through (a
// connection lent with Lease speaks through the caller's buffers).
func (pc *h1conn) buffered() {
	if pc.br == nil {
		pc.br = bufio.NewReaderSize(pc.c, 4<<10)
		pc.bw = bufio.NewWriterSize(sentCounter{pc}, 4<<10)
	}
}

func (p *Pool) maxConns() int {
	if p.limit == nil {
		return 0
	}
	return p.limit.MaxConns()
}

// takeIdle returns the most recently used idle connection to addr that
// is still good, closing the expired and the dead on the way; nil if none.
// A connection idle for over probeAfter, or any with probe, is looked at
// for a close by its peer first.
func (p *Pool) takeIdle(addr string, probe bool) *h1conn {
	now := time.Now()
	for {
		p.mu.Lock()
		conns := p.idle[addr]
		if len(conns) == 0 {
			p.mu.Unlock()
			return nil
		}
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		// An emptied list stays, so that the next put does not allocate
		// one; expire takes it away.
		p.idle[addr] = conns[:len(conns)-1]
		p.mu.Unlock()
		idle := now.Sub(pc.idleFrom)
		if idle <= p.idleFor && ((idle <= probeAfter && !probe) || ((pc.br == nil || pc.br.Buffered() == 0) && !peerClosed(pc.c))) {
			return pc
		}
		p.discard(pc)
	}
}

// oldestIdleLocked takes the idle connection that has waited longest, of
// any address, out of the pool; nil if none.
func (p *Pool) oldestIdleLocked() *h1conn {
	var oldest *h1conn
	for _, conns := range p.idle {
		if len(conns) > 0 && (oldest == nil || conns[0].idleFrom.Before(oldest.idleFrom)) {
			oldest = conns[0]
		}
	}
	if oldest == nil {
		return nil
	}
	conns := p.idle[oldest.addr]
	copy(conns, conns[1:])
	conns[len(conns)-1] = nil
	if conns = conns[:len(conns)-1]; len(conns) == 0 {
		delete(p.idle, oldest.addr)
	} else {
		p.idle[oldest.addr] = conns
	}
	return oldest
}

// discard closes a connection of the pool that is not in the idle list.
func (p *Pool) discard(pc *h1conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discardLocked(pc)
}

func (p *Pool) discardLocked(pc *h1conn) {
	pc.c.Close()
	p.open--
	p.signalLocked()
}

// signalLocked wakes the requests waiting for a connection.
func (p *Pool) signalLocked() {
	if p.freed != nil {
		close(p.freed)
		p.freed = nil
	}
}

// put returns a connection whose last response was read to its end.
func (p *Pool) put(pc *h1conn) {
	pc.reused = true
	pc.idleFrom = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[pc.addr]) >= p.maxIdle {
		p.discardLocked(pc)
		return
	}
	p.idle[pc.addr] = append(p.idle[pc.addr], pc)
	p.signalLocked()
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.idleFor, p.expire)
	}
}

// expire closes the connections idle for longer than idleFor, and runs
// again while any are left.
func (p *Pool) expire() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep = nil
	for addr, conns := range p.idle {
		kept := conns[:0]
		for _, pc := range conns {
			if now.Sub(pc.idleFrom) > p.idleFor {
				p.discardLocked(pc)
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

// CloseIdle closes every idle connection; connections in use close when
// their response ends.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, conns := range p.idle {
		for _, pc := range conns {
			p.discardLocked(pc)
		}
		delete(p.idle, addr)
	}
	if ci, ok := p.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Close stops pooling: idle connections close now, busy ones when done.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true // from here on put closes what it is given
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
	p.CloseIdle()
}

// h1body is a response body read from a pooled connection. Read to its
// end, it returns the connection to the pool; closed before, it closes it.
type h1body struct {
	p     *Pool
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
	b.p.discard(b.pc)
}

// IsUpgrade reports whether r asks to switch protocols (WebSocket). The
// pool leaves such requests to its fallback.
func IsUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// Leased is a connection of the pool lent, with Lease, to a caller that
// writes requests and reads responses on it itself (the byte-level engine
// of core/proxy/h1, with buffers of its own). It goes back with Return.
type Leased struct{ pc *h1conn }

// Conn is the connection.
func (l Leased) Conn() net.Conn { return l.pc.c }

// Reused reports whether the connection carried an exchange before this
// one: a failure before any byte of the response may then mean the peer
// had closed it while it sat in the pool (see ErrStale).
func (l Leased) Reused() bool { return l.pc.reused }

// Lease takes an idle connection to addr, or dials one, within the cap on
// open connections (waiting in its queue, or ErrConnOverflow), as
// RoundTrip does. probe looks at an idle connection for a close by its
// peer before use however short its idle time (for a request that cannot
// be sent again). The caller gives it back with Return.
func (p *Pool) Lease(ctx context.Context, addr string, probe bool) (Leased, error) {
	pc, err := p.get(ctx, addr, probe)
	if err != nil {
		return Leased{}, err
	}
	return Leased{pc: pc}, nil
}

// Return gives back a leased connection: to the idle ones when reuse (its
// last response was read to the end and it stays open), else closed. The
// caller clears any deadline it set before it returns one for reuse.
func (p *Pool) Return(l Leased, reuse bool) {
	if l.pc == nil {
		return
	}
	if reuse {
		p.put(l.pc)
		return
	}
	p.discard(l.pc)
}
