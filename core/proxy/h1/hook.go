package h1

import (
	"errors"
	"net"
	"net/http"
	"strconv"
)

// Hook sees each exchange of one client connection: it decides on every
// request head before a byte of it goes upstream, and hears how each
// exchange ended. A Forwarder without one forwards every request it can
// parse. A Hook belongs to one connection (ServeConnHook): it may keep
// that connection's state (the caller's identity) in itself.
type Hook interface {
	// Request decides on the parsed head x.Req: Forward (after adding
	// x.Set to the fields the request carries on, and dropping those
	// Remove names), Answered (the hook answered with x.Answer), or
	// HandOff (the connection goes, with the head unread, to another
	// engine: ServeConnHook returns ErrHandOff).
	Request(x *Exchange) Verdict
	// Remove reports whether a field the client sent is dropped from the
	// request, besides the hop-by-hop ones.
	Remove(name []byte) bool
	// Done is called once per exchange that Request saw, before the
	// last bytes of its response go to the client, and once for a head
	// the engine refused (x.Refusal set; x.Req holds what was parsed
	// before the refusal, maybe nothing).
	Done(x *Exchange)
}

// UpstreamFailer is a Hook that answers itself (with x.Answer), in place
// of the engine's 502, a request whose upstream could not be dialed,
// took the request, or answered nothing (err says which: the Dial
// error, or a write or read error wrapped), before any byte of a
// response went to the client. The connection then closes.
type UpstreamFailer interface {
	UpstreamFailed(x *Exchange, err error)
}

// Idler is a Hook that hears when its connection waits for the next
// request with nothing of it read (idle true), and when bytes of it came
// (idle false): a server closing down closes the idle connections.
// Idle(true) returning false ends the connection at once.
type Idler interface {
	Idle(idle bool) bool
}

// Verdict is a Hook's decision on a request.
type Verdict uint8

const (
	Forward Verdict = iota
	Answered
	HandOff
)

// ErrHandOff is what ServeConnHook returns when its hook handed the
// connection off; Rest then holds the bytes read from it and not used.
var ErrHandOff = errors.New("the connection is handed to another engine")

// Exchange is one request and its answer, as a Hook sees them. It is
// reused for the connection's next exchange.
type Exchange struct {
	Req *Request
	// Resp is the head of the upstream's response, once one came (an
	// Upstreams hook reads it in Again).
	Resp *Response
	// Set are fields the request carries on besides the client's, in
	// place of any of the same name (set by Request).
	Set []Field
	// Status is the status of the response the client got (0: none),
	// Upstream whether the upstream gave it.
	Status   int
	Upstream bool
	// BytesIn and BytesOut count the request's and the response's body
	// bytes.
	BytesIn, BytesOut int64
	// Close, set before Answer, has the answer end the connection.
	Close bool
	// Refusal says why the engine refused the request (Status is its
	// answer); "" when it did not.
	Refusal string

	done bool // Done was called
	s    *session
}

// Answer answers the request with status, the header fields h and body;
// it keeps the connection open when the request had no body left
// unread. Call it from Hook.Request (then return Answered) or
// DialFailer.DialFailed.
func (x *Exchange) Answer(status int, h []Field, body []byte) {
	s := x.s
	w := &s.cw
	w.b = append(w.b[:0], "HTTP/1.1 "...)
	w.b = strconv.AppendInt(w.b, int64(status), 10)
	w.b = append(w.b, ' ')
	w.b = append(w.b, http.StatusText(status)...)
	w.b = append(w.b, "\r\n"...)
	for _, f := range h {
		w.field(f.Name, f.Value)
	}
	w.b = append(w.b, "Content-Length: "...)
	w.b = strconv.AppendInt(w.b, int64(len(body)), 10)
	w.b = append(w.b, "\r\n"...)
	if x.Close || x.Req.Close || (x.Req.framing != bodyNone && !s.bodyRead) || x.Req.Upgrade {
		w.b = append(w.b, "Connection: close\r\n"...)
		s.answeredClose, w.answered = true, true
	}
	w.b = append(w.b, "\r\n"...)
	if string(x.Req.Method) != http.MethodHead {
		w.b = append(w.b, body...)
		x.BytesOut = int64(len(body))
	}
	w.sent = true
	x.Status = status // the engine flushes it once Done has seen it
}

// ServeConnHook is ServeConn with h deciding on each request. When h
// hands the connection off it returns ErrHandOff with c still open, and
// rest, the bytes read from c and not used (the head of the request h
// handed off and what followed it), which the other engine reads first.
func (f *Forwarder) ServeConnHook(c net.Conn, h Hook) (rest []byte, err error) {
	return f.serveConn(c, h)
}

// GoServeConnHook is ServeConnHook on a goroutine of its own, which calls
// then with what ServeConnHook returns. It returns at once, so that the
// caller's goroutine, whose stack grew in accepting the connection (a TLS
// handshake), can end: the connection's goroutine waits between requests
// with little under it, and its stack shrinks to 4 KiB.
func (f *Forwarder) GoServeConnHook(c net.Conn, h Hook, then func(rest []byte, err error)) {
	go func() {
		then(f.serveConn(c, h))
	}()
}
