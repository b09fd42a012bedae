package proxy

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/core/protect"
)

// handler serves the connections one listener accepts. The inbound and
// every upstream have one; a listener swaps its handler when the protocol
// changes and keeps its socket.
type handler interface {
	// handle owns c. It returns false, without touching c, when the handler
	// is shutting down, so the listener can pass c to its successor.
	handle(c net.Conn) bool
	// shutdown stops taking connections and waits for the open ones until
	// ctx is done, then closes what is left.
	shutdown(ctx context.Context)
}

type handlerBox struct{ h handler }

// socket is one listening socket, kept across config versions as long as
// its key and address stay the same.
type socket struct {
	key  string
	addr string // as configured (may end in :0); guarded by Proxy.mu
	ln   net.Listener
	h    atomic.Pointer[handlerBox]
	done chan struct{}
}

// serves reports whether the socket is what a listener at addr asks for:
// the same configured address, or the address a port 0 got bound to.
func (s *socket) serves(addr string) bool {
	return addr == s.addr || addr == s.ln.Addr().String()
}

func (s *socket) handler() handler { return s.h.Load().h }

func (s *socket) setHandler(h handler) { s.h.Store(&handlerBox{h}) }

// serve accepts until the socket is closed.
func (s *socket) serve(logger *slog.Logger) {
	defer close(s.done)
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			logger.Error("listener: accepting; retrying", "listener", s.key, "addr", s.ln.Addr().String(), "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go s.dispatch(c)
	}
}

func (s *socket) dispatch(c net.Conn) {
	for range 3 {
		if s.handler().handle(c) {
			return
		}
	}
	c.Close()
}

// connSet tracks a handler's open connections so shutdown can wait for
// them or close them.
type connSet struct {
	mu   sync.Mutex
	m    map[*trackedConn]struct{}
	idle chan struct{} // closed when the set becomes empty, if someone waits
}

func (s *connSet) add(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[*trackedConn]struct{})
	}
	s.m[c] = struct{}{}
}

func (s *connSet) remove(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
	if len(s.m) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// wait returns true once the set is empty, false if ctx ends first.
func (s *connSet) wait(ctx context.Context) bool {
	for {
		s.mu.Lock()
		if len(s.m) == 0 {
			s.mu.Unlock()
			return true
		}
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		ch := s.idle
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// len is the number of open connections.
func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	cs := make([]*trackedConn, 0, len(s.m))
	for c := range s.m {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// trackedConn is a downstream connection: it counts its bytes once its peer
// is known, and leaves its set (and the active gauge) when closed.
type trackedConn struct {
	net.Conn
	set       *connSet
	rx, tx    prometheus.Counter // nil until setPeer
	cell      *statCell          // nil until setPeer
	mu        sync.Mutex         // guards closed and isClosed
	closed    func()
	onClose   func() // set before the connection is shared; called once on Close
	isClosed  bool
	closeOnce sync.Once
}

func track(c net.Conn, set *connSet) *trackedConn {
	t := &trackedConn{Conn: c, set: set}
	set.add(t)
	return t
}

// setPeer labels the connection's metrics. Call it before the connection
// is used from more than one goroutine.
func (c *trackedConn) setPeer(m *metrics, direction, peer string, cell *statCell) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return
	}
	c.rx, c.tx, c.closed = m.connOpened(direction, peer)
	c.cell = cell
	cell.connOpened()
	dec := c.closed
	c.closed = func() { dec(); cell.active.Add(-1) }
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.rx != nil && n > 0 {
		c.rx.Add(float64(n))
		c.cell.bytesIn.Add(uint64(n))
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.tx != nil && n > 0 {
		c.tx.Add(float64(n))
		c.cell.bytesOut.Add(uint64(n))
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		c.set.remove(c)
		c.mu.Lock()
		c.isClosed = true
		closed := c.closed
		c.mu.Unlock()
		if closed != nil {
			closed()
		}
		if c.onClose != nil {
			c.onClose()
		}
	})
	return c.Conn.Close()
}

// NetConn is the connection track wrapped (the TCP copy looks through it:
// copy.go).
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the connection when the transport can.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

type closeWriter interface{ CloseWrite() error }

// pipe copies bytes both ways, each on a goroutine of its own, until both
// directions are done, half-closing each side when the other finishes
// sending; then it closes both connections and calls done with the bytes
// copied from a to b and from b to a. It returns at once: the caller's
// goroutine, whose stack grew in the TLS handshake, ends rather than wait
// as deep as it is while the connection idles.
func pipe(a, b net.Conn, done func(aToB, bToA int64)) {
	var (
		aToB, bToA int64
		left       atomic.Int32
	)
	left.Store(2)
	cp := func(dst, src net.Conn, n *int64) {
		var err error
		*n, err = copyIdle(dst, src)
		cw, ok := dst.(closeWriter)
		if err != nil || !ok || cw.CloseWrite() != nil {
			// A reset or a transport without half-close ends both ways.
			a.Close()
			b.Close()
		}
		if left.Add(-1) == 0 {
			a.Close()
			b.Close()
			done(aToB, bToA)
		}
	}
	go cp(b, a, &aToB)
	go cp(a, b, &bToA)
}

// chanListener hands connections a handler accepted (and, inbound,
// authenticated) to an http.Server.
type chanListener struct {
	addr      net.Addr
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// push gives c to the server; false if the server is gone.
func (l *chanListener) push(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// httpServer is an http.Server fed by a chanListener.
type httpServer struct {
	srv *http.Server
	ln  *chanListener
}

func startHTTP(addr net.Addr, h http.Handler, protos *http.Protocols, connCtx func(context.Context, net.Conn) context.Context, errorLog *log.Logger, sh *protect.Shield) *httpServer {
	s := &httpServer{
		srv: &http.Server{
			Handler:     sh.Handler(h),
			Protocols:   protos,
			ConnContext: connCtx,
			ErrorLog:    errorLog,
		},
		ln: newChanListener(addr),
	}
	sh.Server(s.srv) // timeouts, header bytes, h2 streams (core/protect)
	go s.srv.Serve(s.ln)
	return s
}

// shutdown lets requests in flight finish until ctx ends, then closes.
func (s *httpServer) shutdown(ctx context.Context) {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

func protocols(http1, http2, h2c bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(http1)
	p.SetHTTP2(http2)
	p.SetUnencryptedHTTP2(h2c)
	return p
}

// closedNow reports whether the listener was closed.
func (l *chanListener) closedNow() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}
