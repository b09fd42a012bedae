package h1

import (
	"errors"
	"fmt"
	"net"
	"net/http"
)

// ReplayMax is the largest request body an Upstreams hook may forward:
// the engine reads it whole into the upstream writer's buffer before the
// first try, so that every try sends the same bytes.
const ReplayMax = 8 << 10

// Upstreams is a Hook that picks the upstream connection of every try of
// every request itself (from a pool of connections to many peers: the
// sidecar's outbound listener), in place of Forwarder.Dial's one
// connection per client connection. The engine reads the request whole
// (head and a body of up to ReplayMax bytes, Content-Length framed) before
// the first try, answers Expect: 100-continue itself as it starts to read
// the body, and drops the upstream's 1xx responses, as net/http's client
// does; Request hands off (or answers) every request it cannot so carry:
// a chunked or larger body, an upgrade. A try that fails, or whose
// response head Again turns down, goes again while Again says so; when
// none does, the UpstreamFailer answers (else 502), and the client
// connection stays open unless the request asked to close it.
type Upstreams interface {
	// Upstream returns the connection of x's next try, and whether it
	// carried an exchange before.
	Upstream(x *Exchange) (c net.Conn, reused bool, err error)
	// Again decides, after a try, whether the request goes once more
	// (Upstream is then called again). t says how the try failed; with
	// t.Err nil it got the response head x.Resp, which, when Again
	// returns true, is dropped with its connection.
	Again(x *Exchange, t *Try) bool
	// Release gives back the connection of a try: reuse when its
	// response was read to its end and it stays open. Every connection
	// Upstream returned is released once, after Done when the response
	// went to the client.
	Release(x *Exchange, c net.Conn, reuse bool)
}

// Try is how a try of an Upstreams hook failed: Err nil when it did not
// (a response head came).
type Try struct {
	Err error
	// Dial: Upstream failed, nothing was sent.
	Dial bool
	// NotSent: the connection took no byte of the request.
	NotSent bool
	// Stale: a reused connection ended before any byte of a response
	// (the peer had closed it while it was idle).
	Stale bool
}

// errNotReplayable: an Upstreams hook forwarded a request it should have
// handed off.
var errNotReplayable = errors.New("an Upstreams hook forwarded a request with a chunked body, a body over ReplayMax bytes or an upgrade; hand such requests off")

// exchangeUp forwards the request whose head is the first n buffered
// bytes through the tries of u; done when the client connection is to
// close.
func (s *session) exchangeUp(u Upstreams, n int) (done bool, err error) {
	req := &s.req
	if req.framing == bodyChunked || req.ContentLength > ReplayMax || req.Upgrade {
		s.fail(http.StatusInternalServerError, errNotReplayable.Error())
		return true, errNotReplayable
	}
	s.uw.b = s.uw.b[:0]
	defer func() { s.uw.b = s.uw.b[:0] }()
	s.writeRequestHead()
	s.cr.r += n // the head's bytes are copied out: its slices are dead
	if req.framing == bodyLength {
		if req.Expect100 {
			s.cw.b = append(s.cw.b, "HTTP/1.1 100 Continue\r\n\r\n"...)
			if err := s.cw.flush(); err != nil {
				return true, err
			}
		}
		if err := s.readBody(req.ContentLength); err != nil {
			return true, fmt.Errorf("reading the request body: %w", err)
		}
	}
	s.bodyRead = true
	isHead := string(req.Method) == http.MethodHead
	t := &s.try // not on the stack: the hook's interface call would move it to the heap
	for {
		c, reused, err := u.Upstream(&s.x)
		if err != nil {
			*t = Try{Err: fmt.Errorf("dialing the upstream: %w", err), Dial: true}
			if u.Again(&s.x, t) {
				continue
			}
			return s.upFailed(t.Err)
		}
		s.up = c
		s.ur.c, s.ur.r, s.ur.w = c, 0, 0
		*t = s.tryOn(c, reused, isHead)
		if t.Err == nil && s.resp.Status == http.StatusSwitchingProtocols {
			t.Err = errors.New("reading the response: the upstream switched protocols on a request that did not ask to")
		}
		if u.Again(&s.x, t) {
			s.up = nil
			u.Release(&s.x, c, false)
			continue
		}
		if t.Err != nil {
			s.up = nil
			u.Release(&s.x, c, false)
			return s.upFailed(t.Err)
		}
		closeClient := req.Close || s.resp.framing == bodyClose
		err = s.forwardResponse(s.headLen, closeClient)
		reuse := s.up != nil && err == nil
		s.up = nil
		u.Release(&s.x, c, reuse)
		return closeClient || err != nil, err
	}
}

// readBody appends the next n body bytes from the client to the upstream
// writer's buffer (which grows past its size if it must: never flushed
// before the first try).
func (s *session) readBody(n int64) error {
	r, w := &s.cr, &s.uw
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
		w.b = append(w.b, b...)
		w.n += int64(len(b))
		r.r += len(b)
		n -= int64(len(b))
	}
	return nil
}

// tryOn writes the whole request, which waits in the upstream writer's
// buffer, on c and reads the response head (its length in s.headLen),
// dropping 1xx responses.
func (s *session) tryOn(c net.Conn, reused, isHead bool) Try {
	wn, err := c.Write(s.uw.b)
	if err != nil {
		return Try{Err: fmt.Errorf("sending the request: %w", err), NotSent: wn == 0, Stale: reused}
	}
	seen := false // a byte of a response came
	for {
		rn, perr := ParseResponse(s.ur.buf[s.ur.r:s.ur.w], s.f.Limits, isHead, &s.resp)
		if perr != nil {
			return Try{Err: fmt.Errorf("reading the response: %w", perr)}
		}
		if rn > 0 {
			if st := s.resp.Status; st < 200 && st != http.StatusSwitchingProtocols {
				s.ur.r += rn // 1xx: the final response follows
				continue
			}
			s.headLen = rn
			return Try{}
		}
		if err := s.ur.fill(s.f.Limits.MaxHeaderBytes); err != nil {
			return Try{Err: fmt.Errorf("reading the response: %w", err), Stale: reused && !seen}
		}
		seen = true
	}
}

// upFailed has the hook answer a request no try of which got a response
// (else answers 502 and closes the connection).
func (s *session) upFailed(err error) (bool, error) {
	uf, ok := s.hook.(UpstreamFailer)
	if !ok || s.cw.sent {
		s.fail(http.StatusBadGateway, "calling the upstream: "+err.Error())
		return true, err
	}
	uf.UpstreamFailed(&s.x, err)
	s.finish()
	if err := s.cw.flush(); err != nil {
		return true, err
	}
	return s.answeredClose, nil
}
