package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/core/proxy/sockwait"
)

// Forwarder carries HTTP/1.1 from client connections to upstream ones,
// one exchange at a time per client connection, changing the request's
// header fields as this hop must.
type Forwarder struct {
	// Limits bound each request head (and each response head, and the
	// trailers of either).
	Limits Limits
	// Dial opens a connection to the upstream. A client connection keeps
	// its upstream connection while both keep it alive.
	Dial func() (net.Conn, error)
	// Remove names header fields taken off every request, besides the
	// hop-by-hop ones and those the request's Connection field names.
	Remove []string
	// Set are fields put on every request in place of any of the same
	// name the client sent (which cannot have them dropped by naming
	// them in Connection either).
	Set []Field
	// RemoveResponse names header fields taken off every response (and
	// its trailers), besides the hop-by-hop ones.
	RemoveResponse []string
	// Host is the Host field sent for a request that has none (HTTP/1.0
	// allows that): the upstream's address.
	Host string
	// ReadHeaderTimeout bounds the time a client takes to send a head
	// once it has started; IdleTimeout the time between requests. Zero:
	// no bound.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// HandOffPrior hands off (ErrHandOff) a connection that opens with
	// HTTP/2's preface (h2c with prior knowledge) rather than refuse it.
	HandOffPrior bool
}

// preface is how an HTTP/2 connection with prior knowledge opens.
const preface = "PRI * HTTP/2.0\r\n"

// bufSize is each reader's and writer's buffer; a head longer than a
// reader's buffer grows it up to Limits.MaxHeaderBytes.
const bufSize = 8 << 10

// maxChunkLine bounds a chunk-size line, extensions included.
const maxChunkLine = 4 << 10

type session struct {
	f      *Forwarder
	c      net.Conn
	cr     reader // from the client
	cw     writer // to the client
	up     net.Conn
	reused bool   // up carried an exchange before this one
	ur     reader // from the upstream
	uw     writer // to the upstream
	req    Request
	resp   Response
	hook   Hook     // nil: every request is forwarded
	x      Exchange // the exchange the hook sees
	// answeredClose: the hook's answer ends the connection.
	answeredClose bool
	// The client connection's socket (nil: none, a net.Pipe) and
	// whether TLS is over it: an idle plain connection waits on the
	// socket (idleRead).
	rc     syscall.RawConn
	isTLS  bool
	small  *[smallSize]byte // what an idle connection without a socket reads into
	fields *fieldSet        // the Fields of req and resp, held with the buffers
	// bodyRead: the request's body was read whole (an Upstreams hook's
	// request), so an answer leaves the connection open.
	bodyRead bool
	headLen  int // the response head's length (exchangeUp)
	try      Try // the outcome of exchangeUp's last try
}

var sessions = sync.Pool{New: func() any { return new(session) }}

// fieldSet is the room of a request's and a response's header fields,
// held by a session with its buffers: an idle connection holds none.
type fieldSet struct{ req, resp [32]Field }

var fieldSets = sync.Pool{New: func() any { return new(fieldSet) }}

// bufs are the readers' and writers' buffers, held by a session only
// while an exchange is under way: a connection waiting for its next
// request holds none (it waits with its small buffer).
var bufs = sync.Pool{New: func() any {
	b := make([]byte, bufSize)
	return &b
}}

// smallSize is the buffer a connection without a socket to wait on
// waits for its next request with; what comes is copied into a reader's
// buffer taken then.
const smallSize = 512

// takeBufs gives the session's readers and writers their buffers, and
// its request and response their fields' room.
func (s *session) takeBufs() {
	s.cr.take()
	s.cw.take()
	s.ur.take()
	s.uw.take()
	if s.fields == nil {
		s.fields = fieldSets.Get().(*fieldSet)
		s.req.Fields, s.resp.Fields = s.fields.req[:0], s.fields.resp[:0]
	}
}

// releaseBufs gives the buffers back when none holds a byte (force: in
// any case, the connection is done).
func (s *session) releaseBufs(force bool) {
	if !force && (s.cr.r != s.cr.w || s.ur.r != s.ur.w || len(s.cw.b) > 0 || len(s.uw.b) > 0) {
		return
	}
	s.cr.release()
	s.cw.release()
	s.ur.release()
	s.uw.release()
	if s.fields != nil {
		*s.fields = fieldSet{} // no slice of a pooled buffer stays reachable
		fieldSets.Put(s.fields)
		s.fields = nil
	}
	s.req.Fields, s.resp.Fields = nil, nil
}

// idleRead waits for the first bytes of the next request holding no
// buffer, then reads them into the client reader's buffer, taken then.
// A plain socket is waited on (sockwait.Readable). A TLS connection (the
// inbound's, from another sidecar's pool: few) waits in a read into the
// small buffer, since crypto/tls may hold the next request already
// (records read with the last ones), which no wait on the socket sees,
// and a read that asks it without waiting costs allocations.
func (s *session) idleRead() error {
	if s.rc == nil || s.isTLS || !sockwait.Supported {
		if s.small == nil {
			s.small = new([smallSize]byte)
		}
		n, err := s.c.Read(s.small[:])
		if n > 0 {
			s.takeBufs()
			s.cr.r, s.cr.w = 0, copy(s.cr.buf, s.small[:n])
			return nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	if err := sockwait.Readable(s.rc); err != nil {
		return err
	}
	s.takeBufs()
	n, err := s.c.Read(s.cr.buf)
	s.cr.r, s.cr.w = 0, n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// ServeConn forwards the requests that come on c until c or the upstream
// closes, a request asks to close, or a message is refused. It closes c.
// A refused request is answered (400, 413, 417, 431, 501, 505; 502 when the
// upstream fails or answers what cannot be read) and ends the
// connection, since what follows it on c cannot be trusted to start a
// request.
func (f *Forwarder) ServeConn(c net.Conn) error {
	_, err := f.serveConn(c, nil)
	return err
}

func (f *Forwarder) serveConn(c net.Conn, h Hook) ([]byte, error) {
	s := f.begin(c, h)
	return s.end(s.serve())
}

// begin takes a session for c (not inlined, as end: serveConn's frame is
// under every wait for a request, and stays small).
//
//go:noinline
func (f *Forwarder) begin(c net.Conn, h Hook) *session {
	s := sessions.Get().(*session)
	s.f, s.c, s.hook = f, c, h
	s.isTLS, s.rc = sockwait.Under(c)
	s.x = Exchange{Req: &s.req, Resp: &s.resp, Set: s.x.Set[:0], s: s}
	s.cr.c, s.cr.r, s.cr.w = c, 0, 0
	s.cw.c, s.cw.b = c, s.cw.b[:0]
	s.uw.b, s.reused = s.uw.b[:0], false
	s.cw.answered, s.answeredClose = false, false
	return s
}

// end closes the session's connections (but a connection handed off)
// and gives the session back.
//
//go:noinline
func (s *session) end(err error) ([]byte, error) {
	c := s.c
	var rest []byte
	if errors.Is(err, ErrHandOff) {
		// Allocates, once per hand-off: the buffer stays with the pool.
		rest = bytes.Clone(s.cr.buf[s.cr.r:s.cr.w])
	} else {
		s.cw.flush() // an answer the engine or the hook wrote
		if s.cw.answered {
			s.linger()
		}
		c.Close()
	}
	s.releaseBufs(true)
	if s.up != nil {
		s.up.Close()
	}
	s.f, s.c, s.up, s.cr.c, s.cw.c, s.ur.c, s.uw.c, s.hook = nil, nil, nil, nil, nil, nil, nil, nil
	s.rc, s.small = nil, nil
	s.x = Exchange{Set: s.x.Set[:0]}
	sessions.Put(s)
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil, nil
	}
	return rest, err
}

func (s *session) serve() error {
	for {
		s.x.reset()
		n, err := s.readRequest()
		if err != nil {
			if s.x.Refusal != "" {
				s.finish()
			}
			return err
		}
		if n == 0 {
			return nil // the client closed between requests
		}
		if s.hook != nil {
			switch s.hook.Request(&s.x) {
			case HandOff:
				return ErrHandOff
			case Answered:
				s.cr.r += n
				s.finish()
				if err := s.cw.flush(); err != nil {
					return err
				}
				if s.answeredClose {
					return nil
				}
				continue
			}
		}
		if u, ok := s.hook.(Upstreams); ok {
			done, err := s.exchangeUp(u, n)
			s.finish()
			if err != nil || done {
				return err
			}
			continue
		}
		if s.up == nil {
			if err := s.dial(n); err != nil {
				s.finish()
				return err
			}
		}
		done, err := s.exchange(n)
		s.finish()
		if err != nil || done {
			return err
		}
		s.reused = true
	}
}

func (x *Exchange) reset() {
	s := x.s
	*x = Exchange{Req: &s.req, Resp: &s.resp, Set: x.Set[:0], s: s}
	s.uw.n, s.cw.n = 0, 0
	s.bodyRead = false
}

// readRequest reads and parses the next request head; 0 and no error
// when the client closed cleanly before sending one.
func (s *session) readRequest() (int, error) {
	f := s.f
	s.cw.sent = false // a new exchange: a refusal may be answered
	if f.IdleTimeout > 0 && s.cr.r == s.cr.w {
		s.c.SetReadDeadline(time.Now().Add(f.IdleTimeout))
	} else if f.ReadHeaderTimeout > 0 {
		s.c.SetReadDeadline(time.Now().Add(f.ReadHeaderTimeout))
	}
	started := s.cr.r < s.cr.w
	if !started {
		s.releaseBufs(false)
	}
	idler, idle := s.hook.(Idler)
	if idle && !started && !idler.Idle(true) {
		return 0, nil // closing: no next request
	}
	idle = idle && !started
	for {
		n, perr := ParseRequest(s.cr.buf[s.cr.r:s.cr.w], f.Limits, &s.req)
		if perr != nil && f.HandOffPrior && s.hook != nil && bytes.HasPrefix(s.cr.buf[s.cr.r:s.cr.w], []byte(preface)) {
			return 0, ErrHandOff
		}
		if perr != nil {
			s.fail(perr.Status, perr.Msg)
			return 0, perr
		}
		if n > 0 {
			if f.ReadHeaderTimeout > 0 || f.IdleTimeout > 0 {
				s.c.SetReadDeadline(time.Time{})
			}
			return n, nil
		}
		var err error
		if s.cr.buf == nil {
			err = s.idleRead()
		} else {
			err = s.cr.fill(f.Limits.MaxHeaderBytes)
		}
		if idle {
			idle = false
			idler.Idle(false)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && !started && s.cr.r == s.cr.w {
				return 0, nil
			}
			if pe := (*Error)(nil); errors.As(err, &pe) {
				s.fail(pe.Status, pe.Msg) // a head past the limit
			}
			return 0, fmt.Errorf("reading a request head: %w", err)
		}
		if !started && f.ReadHeaderTimeout > 0 {
			s.c.SetReadDeadline(time.Now().Add(f.ReadHeaderTimeout))
		}
		started = true
	}
}

// exchange forwards the request whose head is the first n buffered bytes
// and its response; done when the client connection is to close.
func (s *session) exchange(n int) (done bool, err error) {
	req := &s.req
	s.writeRequestHead()
	s.cr.r += n // the head's bytes are copied out: its slices are dead
	isHead := string(req.Method) == http.MethodHead
	if req.Expect100 && req.framing != bodyNone {
		if err := s.uw.flush(); err != nil {
			return true, s.upstreamFailed("sending the request", err)
		}
		rn, err := s.readResponse(isHead, false)
		if err != nil {
			return true, err
		}
		if s.resp.Status != http.StatusContinue {
			// Refused before the body: answer, and end both
			// connections, since the body may still be on its way.
			s.resp.Close = true
			return true, s.forwardResponse(rn, true)
		}
		s.ur.r += rn
		s.cw.b = append(s.cw.b, "HTTP/1.1 100 Continue\r\n\r\n"...)
		if err := s.cw.flush(); err != nil {
			return true, err
		}
	}
	switch req.framing {
	case bodyLength:
		err = copyLength(&s.cr, &s.uw, req.ContentLength)
	case bodyChunked:
		err = copyChunked(&s.cr, &s.uw, false, s.f.Limits, s.f.Limits.MaxBodyBytes, s.removesRequest)
	}
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			s.fail(pe.Status, pe.Msg)
		}
		return true, fmt.Errorf("reading the request body: %w", err)
	}
	headLen := len(s.uw.b) // the whole request when it has no body
	if err := s.uw.flush(); err != nil && !s.canResend() {
		return true, s.upstreamFailed("sending the request", err)
	}
	for first := true; ; first = false {
		rn, err := s.readResponse(isHead, first && s.canResend())
		if errors.Is(err, errStale) {
			// The upstream had closed the kept-alive connection:
			// the same bytes go again on a new one, once.
			if rn, err = s.resend(headLen, isHead); err != nil {
				return true, err
			}
		}
		if err != nil {
			return true, err
		}
		st := s.resp.Status
		if st == http.StatusSwitchingProtocols && req.Upgrade {
			return true, s.pipe(rn)
		}
		if st >= 200 || st == http.StatusSwitchingProtocols {
			closeClient := req.Close || s.resp.framing == bodyClose || st == http.StatusSwitchingProtocols
			return closeClient, s.forwardResponse(rn, closeClient)
		}
		// 1xx: forward it (an HTTP/1.0 client knows none), and read on.
		if req.HTTP10 {
			s.ur.r += rn
			continue
		}
		if err := s.forwardResponse(rn, false); err != nil {
			return true, err
		}
	}
}

// errStale: a kept-alive upstream connection ended before any byte of a
// response.
var errStale = errors.New("the upstream closed the kept-alive connection")

// canResend: the request may go again on a new connection if this one
// turns out stale: it has no body (its head is all of it, still in the
// upstream writer's buffer), a method that is safe to repeat, and the
// connection carried an exchange before.
func (s *session) canResend() bool {
	switch string(s.req.Method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return s.reused && s.req.framing == bodyNone && !s.req.Upgrade
	}
	return false
}

// resend dials a new upstream connection and writes the head of headLen
// bytes that the stale one took, then reads the response head.
func (s *session) resend(headLen int, isHead bool) (int, error) {
	s.dropUpstream()
	if err := s.dial(0); err != nil {
		return 0, err
	}
	s.uw.b = s.uw.b[:headLen] // flush kept the bytes: nothing was written since
	if err := s.uw.flush(); err != nil {
		return 0, s.upstreamFailed("sending the request", err)
	}
	return s.readResponse(isHead, false)
}

// dial opens a new upstream connection, or answers 502 (or has the
// hook answer) the request whose head is the first n buffered bytes (0:
// the head was sent on a stale connection and is not buffered).
func (s *session) dial(n int) error {
	up, err := s.f.Dial()
	if err != nil {
		if uf, ok := s.hook.(UpstreamFailer); ok && !s.cw.sent {
			s.cr.r += n
			s.x.Close = true // the connection ends: the answer says so
			uf.UpstreamFailed(&s.x, err)
			s.answeredClose, s.cw.answered = true, true
		} else {
			s.fail(502, "calling the upstream: "+err.Error()+"; is it running?")
		}
		return fmt.Errorf("dialing the upstream: %w", err)
	}
	s.up, s.reused = up, false
	s.ur.c, s.ur.r, s.ur.w = up, 0, 0
	s.uw.c = up
	return nil
}

// readResponse reads and parses the next response head from the upstream;
// errStale, when stale may be, for a connection that ended before any
// byte of it.
func (s *session) readResponse(isHead, stale bool) (int, error) {
	for {
		n, perr := ParseResponse(s.ur.buf[s.ur.r:s.ur.w], s.f.Limits, isHead, &s.resp)
		if perr != nil {
			s.fail(perr.Status, perr.Msg)
			return 0, perr
		}
		if n > 0 {
			return n, nil
		}
		if err := s.ur.fill(s.f.Limits.MaxHeaderBytes); err != nil {
			if stale && s.ur.r == s.ur.w && !errors.As(err, new(*Error)) {
				return 0, errStale
			}
			return 0, s.upstreamFailed("reading the response", err)
		}
	}
}

// upstreamFailed answers 502 (or has the hook answer) and returns err.
func (s *session) upstreamFailed(what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	if uf, ok := s.hook.(UpstreamFailer); ok && !s.cw.sent {
		s.x.Close = true // the connection ends: the answer says so
		uf.UpstreamFailed(&s.x, err)
		s.answeredClose, s.cw.answered = true, true
		return err
	}
	s.fail(http.StatusBadGateway, "calling the upstream: "+err.Error())
	return err
}

// forwardResponse writes the response head of rn buffered bytes, and its
// body, to the client.
func (s *session) forwardResponse(rn int, closeClient bool) error {
	p := &s.resp
	raw := s.req.HTTP10 && p.framing == bodyChunked // an HTTP/1.0 client reads no chunks
	if raw {
		closeClient = true
	}
	w := &s.cw
	w.b = append(w.b, "HTTP/1.1 "...)
	w.b = strconv.AppendInt(w.b, int64(p.Status), 10)
	w.b = append(w.b, ' ')
	w.b = append(w.b, p.Reason...)
	w.b = append(w.b, "\r\n"...)
	for _, fl := range p.Fields {
		switch {
		case hopByHop(fl.Name), fold(fl.Name, "Content-Length"), listed(fl.Name, p.drop),
			s.f.removesResponse(fl.Name):
			if p.Status == http.StatusSwitchingProtocols && fold(fl.Name, "Upgrade") {
				break
			}
			continue
		case fold(fl.Name, "Trailer") && p.framing != bodyChunked:
			continue // announces trailers only a chunked body carries
		}
		w.field(fl.Name, fl.Value)
	}
	if p.framing == bodyLength || p.framing == bodyNone && p.ContentLength > 0 {
		w.b = append(w.b, "Content-Length: "...)
		w.b = strconv.AppendInt(w.b, p.ContentLength, 10)
		w.b = append(w.b, "\r\n"...)
	}
	if p.framing == bodyChunked && !raw {
		w.b = append(w.b, "Transfer-Encoding: chunked\r\n"...)
	}
	if p.Status == http.StatusSwitchingProtocols {
		w.b = append(w.b, "Connection: Upgrade\r\n"...)
	} else if closeClient && p.Status >= 200 {
		w.b = append(w.b, "Connection: close\r\n"...)
	}
	w.b = append(w.b, "\r\n"...)
	if p.Status >= 200 || p.Status == http.StatusSwitchingProtocols {
		w.sent = true // a failure from here on cannot be answered
		s.x.Status, s.x.Upstream = p.Status, true
	}
	s.ur.r += rn
	var err error
	switch p.framing {
	case bodyLength:
		err = copyLength(&s.ur, w, p.ContentLength)
	case bodyChunked:
		err = copyChunked(&s.ur, w, raw, s.f.Limits, 0, s.f.removesResponse)
	case bodyClose:
		err = copyUntilEOF(&s.ur, w)
	}
	if err != nil {
		s.dropUpstream()
		w.flush()
		return fmt.Errorf("reading the response body: %w", err)
	}
	if p.Close {
		s.dropUpstream()
	}
	if p.Status >= 200 {
		// Before the last bytes go: what the hook records (metrics,
		// the access log) is there once the client has the response.
		s.finish()
	}
	return w.flush()
}

// finish reports the exchange to the hook, once.
func (s *session) finish() {
	if s.hook == nil || s.x.done {
		return
	}
	s.x.done = true
	s.x.BytesIn, s.x.BytesOut = s.uw.n, s.cw.n
	s.hook.Done(&s.x)
}

func (s *session) dropUpstream() {
	if s.up != nil {
		s.up.Close()
		s.up = nil
	}
}

// writeRequestHead writes the request's head, with this hop's changes,
// into the upstream writer.
func (s *session) writeRequestHead() {
	r, w, f := &s.req, &s.uw, s.f
	w.b = append(w.b, r.Method...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, r.Path...)
	if r.HasQuery {
		w.b = append(w.b, '?')
		w.b = append(w.b, r.Query...)
	}
	w.b = append(w.b, " HTTP/1.1\r\n"...)
	host := false
	for _, fl := range r.Fields {
		switch {
		case fold(fl.Name, "Host"):
			if r.AbsHost {
				continue
			}
			host = true
		case fold(fl.Name, "Te"):
			if containsFold(fl.Value, "trailers") {
				w.b = append(w.b, "Te: trailers\r\n"...)
			}
			continue
		case fold(fl.Name, "Upgrade"):
			if !r.Upgrade {
				continue
			}
		case hopByHop(fl.Name), fold(fl.Name, "Content-Length"),
			fold(fl.Name, "Proxy-Authorization"), listed(fl.Name, r.drop):
			continue
		case fold(fl.Name, "Trailer") && r.framing != bodyChunked:
			continue // announces trailers only a chunked body carries
		}
		if s.removesRequest(fl.Name) {
			continue
		}
		w.field(fl.Name, fl.Value)
	}
	if !host {
		w.b = append(w.b, "Host: "...)
		if len(r.Host) > 0 {
			w.b = append(w.b, r.Host...)
		} else {
			w.b = append(w.b, f.Host...)
		}
		w.b = append(w.b, "\r\n"...)
	}
	for _, fl := range f.Set {
		w.field(fl.Name, fl.Value)
	}
	for _, fl := range s.x.Set {
		w.field(fl.Name, fl.Value)
	}
	switch r.framing {
	case bodyLength:
		w.b = append(w.b, "Content-Length: "...)
		w.b = strconv.AppendInt(w.b, r.ContentLength, 10)
		w.b = append(w.b, "\r\n"...)
	case bodyChunked:
		w.b = append(w.b, "Transfer-Encoding: chunked\r\n"...)
	case bodyNone:
		// The methods that carry a body say when they carry none (as
		// net/http's client does): some servers wait for one.
		switch string(r.Method) {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			w.b = append(w.b, "Content-Length: 0\r\n"...)
		}
	}
	if r.Upgrade {
		w.b = append(w.b, "Connection: Upgrade\r\n"...)
	}
	w.b = append(w.b, "\r\n"...)
}

func (f *Forwarder) removes(name []byte) bool {
	for _, n := range f.Remove {
		if fold(name, n) {
			return true
		}
	}
	for _, fl := range f.Set {
		if bytes.EqualFold(name, fl.Name) {
			return true
		}
	}
	return false
}

// hopByHop: the fields that concern one connection only (RFC 9110
// 7.6.1), which this hop writes itself when it must.
// removesRequest: a request field (or trailer) the client sent that
// does not go on: one the Forwarder or the hook removes or sets.
func (s *session) removesRequest(name []byte) bool {
	if s.f.removes(name) {
		return true
	}
	if s.hook == nil {
		return false
	}
	for _, fl := range s.x.Set {
		if bytes.EqualFold(name, fl.Name) {
			return true
		}
	}
	return s.hook.Remove(name)
}

func (f *Forwarder) removesResponse(name []byte) bool {
	for _, n := range f.RemoveResponse {
		if fold(name, n) {
			return true
		}
	}
	return false
}

func hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return fold(name, "Te")
	case 7:
		return fold(name, "Upgrade")
	case 10:
		return fold(name, "Connection") || fold(name, "Keep-Alive")
	case 16:
		return fold(name, "Proxy-Connection")
	case 17:
		return fold(name, "Transfer-Encoding")
	}
	return false
}

func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if fold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

func listed(name []byte, drop [][]byte) bool {
	for _, d := range drop {
		if bytes.EqualFold(name, d) {
			return true
		}
	}
	return false
}

// fail answers the client with status and msg, and closes the exchange.
// What the client already received (a partial response) is not undone:
// then the answer is not written.
func (s *session) fail(status int, msg string) {
	if s.cw.sent {
		return
	}
	body := "weft: " + msg + "\n"
	if status == http.StatusBadRequest {
		body = "weft: bad request: " + msg + "\n"
	}
	w := &s.cw
	w.b = append(w.b[:0], "HTTP/1.1 "...)
	w.b = strconv.AppendInt(w.b, int64(status), 10)
	w.b = append(w.b, ' ')
	w.b = append(w.b, http.StatusText(status)...)
	w.b = append(w.b, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: "...)
	w.b = strconv.AppendInt(w.b, int64(len(body)), 10)
	w.b = append(w.b, "\r\n\r\n"...)
	w.b = append(w.b, body...)
	w.answered = true // flushed when the connection ends (serveConn)
	s.x.Status, s.x.Refusal = status, msg
}

// Lingering after a refusal: how long and how much of what the client
// still sends is read and dropped before the connection closes, so that
// the refusal is read rather than lost to a reset (closing a socket with
// unread bytes resets it).
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// linger closes the client connection's write side after a refusal and
// reads what the client still sends, within lingerTime and lingerBytes.
func (s *session) linger() {
	cw, ok := s.c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	s.c.SetReadDeadline(time.Now().Add(lingerTime))
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	for n := 0; n < lingerBytes; {
		m, err := s.c.Read(*bp)
		n += m
		if err != nil {
			return
		}
	}
}

// pipe hands an upgraded connection (101) over to a raw byte pipe both
// ways, after the response head of rn buffered bytes.
func (s *session) pipe(rn int) error {
	if err := s.forwardResponse(rn, false); err != nil {
		return err
	}
	up := s.up
	if up == nil {
		return errors.New("the upstream closed the upgraded connection")
	}
	// Bytes either side sent past the heads go first.
	if b := s.ur.buf[s.ur.r:s.ur.w]; len(b) > 0 {
		if _, err := s.c.Write(b); err != nil {
			return err
		}
	}
	if b := s.cr.buf[s.cr.r:s.cr.w]; len(b) > 0 {
		if _, err := up.Write(b); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(up, s.c)
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- err
	}()
	_, err := io.Copy(s.c, up)
	if cw, ok := s.c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if err2 := <-done; err == nil {
		err = err2
	}
	return err
}

// copyLength copies n body bytes from r to w.
func copyLength(r *reader, w *writer, n int64) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(0); err != nil {
				return unexpected(err)
			}
		}
		b := r.buf[r.r:r.w]
		if int64(len(b)) > n {
			b = b[:n]
		}
		if err := w.write(b); err != nil {
			return err
		}
		r.r += len(b)
		n -= int64(len(b))
	}
	return nil
}

// copyUntilEOF copies a body delimited by its connection's close.
func copyUntilEOF(r *reader, w *writer) error {
	for {
		if r.r == r.w {
			if err := r.fill(0); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
		if err := w.write(r.buf[r.r:r.w]); err != nil {
			return err
		}
		r.r = r.w
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// copyChunked copies a chunked body and its trailers from r to w, framed
// anew (chunk extensions are dropped), or, when raw, only the data; a
// body over maxBody bytes (0: no cap) is refused before its chunk is read.
func copyChunked(r *reader, w *writer, raw bool, lim Limits, maxBody int64, drop func([]byte) bool) error {
	var total int64
	for {
		line, err := r.line(maxChunkLine)
		if err != nil {
			return err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return refuse(400, "a chunk-size line is not hexadecimal digits with optional ;extensions")
		}
		if size == 0 {
			break
		}
		if total += size; maxBody > 0 && total > maxBody {
			return refuse(413, "the request body is larger than the "+strconv.FormatInt(maxBody, 10)+" bytes this listener takes")
		}
		if !raw {
			w.b = strconv.AppendInt(w.b, size, 16)
			w.b = append(w.b, "\r\n"...)
		}
		if err := copyLength(r, w, size); err != nil {
			return err
		}
		if line, err := r.line(2); err != nil || len(line) != 0 {
			if err != nil {
				return err
			}
			return refuse(400, "a chunk's data is not followed by CRLF; its size is wrong")
		}
		if !raw {
			w.b = append(w.b, "\r\n"...)
		}
	}
	if !raw {
		w.b = append(w.b, "0\r\n"...)
	}
	count, bytes := 0, 0
	for {
		line, err := r.line(lim.MaxHeaderBytes)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		count++
		bytes += len(line) + 2
		if count > lim.MaxHeaderCount || bytes > lim.MaxHeaderBytes {
			return refuse(431, "the trailers are larger than this listener takes")
		}
		fl, perr := parseField(line)
		if perr != nil {
			return perr
		}
		if !raw && !hopByHop(fl.Name) && !fold(fl.Name, "Content-Length") && !fold(fl.Name, "Host") && !drop(fl.Name) {
			w.field(fl.Name, fl.Value)
		}
	}
	if !raw {
		w.b = append(w.b, "\r\n"...)
	}
	return nil
}

// parseChunkSize reads "hex [ws] [;ext]": at most 15 hex digits.
func parseChunkSize(line []byte) (int64, bool) {
	var v int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i == 15 {
			return 0, false
		}
		v = v<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, false
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, false
	}
	for _, c := range rest {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, false
		}
	}
	return v, true
}

// reader is a connection's read side; its buffer is pooled, held while
// an exchange is under way (takeBufs, releaseBufs).
type reader struct {
	c    net.Conn
	buf  []byte
	bp   *[]byte // the pooled buffer buf is (nil: none, or buf grew)
	r, w int
}

func (r *reader) take() {
	if r.buf == nil {
		r.bp = bufs.Get().(*[]byte)
		r.buf = *r.bp
	}
}

func (r *reader) release() {
	if r.bp != nil {
		bufs.Put(r.bp)
	}
	r.buf, r.bp, r.r, r.w = nil, nil, 0, 0
}

// fill reads more into the buffer, moving unread bytes to its start when
// it is full, and growing it up to max (0: no growth) for a long head.
func (r *reader) fill(max int) error {
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
	if r.w == len(r.buf) {
		if r.r > 0 {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		} else if len(r.buf) < max {
			nb := make([]byte, min(2*len(r.buf), max))
			copy(nb, r.buf[:r.w])
			if r.bp != nil {
				bufs.Put(r.bp)
				r.bp = nil
			}
			r.buf = nb
		} else {
			return refuse(431, "the head is larger than this listener takes")
		}
	}
	n, err := r.c.Read(r.buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// line returns the next CRLF-terminated line without its CRLF and moves
// past it; max bounds its length.
func (r *reader) line(max int) ([]byte, error) {
	for {
		b := r.buf[r.r:r.w]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if i == 0 || b[i-1] != '\r' {
				return nil, refuse(400, "a line ends with a bare LF; end every line with CRLF")
			}
			l := b[:i-1]
			if bytes.IndexByte(l, '\r') >= 0 {
				return nil, refuse(400, "a line has a bare CR")
			}
			r.r += i + 1
			return l, nil
		}
		if len(b) > max+1 {
			return nil, refuse(400, "a line is longer than "+strconv.Itoa(max)+" bytes")
		}
		if err := r.fill(max + 2); err != nil {
			return nil, unexpected(err)
		}
	}
}

// writer is a connection's write side: what is written waits in b until
// flush, so that a message goes out in one write when it fits.
type writer struct {
	c        net.Conn
	b        []byte
	bp       *[]byte // the pooled buffer b was taken from
	n        int64   // body bytes through write
	sent     bool    // bytes of the current response went out
	answered bool    // a refusal went out (fail)
}

func (w *writer) take() {
	if w.b == nil {
		w.bp = bufs.Get().(*[]byte)
		w.b = (*w.bp)[:0]
	}
}

func (w *writer) release() {
	if w.bp != nil {
		bufs.Put(w.bp)
	}
	w.b, w.bp = nil, nil
}

func (w *writer) field(name, value []byte) {
	w.b = append(w.b, name...)
	w.b = append(w.b, ": "...)
	w.b = append(w.b, value...)
	w.b = append(w.b, "\r\n"...)
}

// write adds p, flushing first when it would not fit; a p as large as
// the buffer goes out directly.
func (w *writer) write(p []byte) error {
	w.n += int64(len(p))
	if len(w.b)+len(p) <= cap(w.b) {
		w.b = append(w.b, p...)
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	if len(p) >= cap(w.b) {
		_, err := w.c.Write(p)
		return err
	}
	w.b = append(w.b, p...)
	return nil
}

func (w *writer) flush() error {
	if len(w.b) == 0 {
		return nil
	}
	_, err := w.c.Write(w.b)
	w.b = w.b[:0]
	return err
}
