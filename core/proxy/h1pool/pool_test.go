package h1pool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer answers each connection's requests with the given raw
// responses, one per request, then closes the connection. It counts the
// connections it accepted and says on closed when it has closed one.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int32
	closed   chan struct{}
}

func startRawServer(t *testing.T, responses ...string) *rawServer {
	t.Helper()
	s := &rawServer{closed: make(chan struct{}, 16)}
	s.ln = serveConns(t, func(c net.Conn) {
		s.accepted.Add(1)
		br := bufio.NewReader(c)
		for _, resp := range responses {
			req, err := http.ReadRequest(br)
			if err != nil {
				break
			}
			io.Copy(io.Discard, req.Body)
			c.Write([]byte(resp))
		}
		c.Close()
		s.closed <- struct{}{}
	})
	return s
}

// serveConns listens on loopback (closed at the end of the test) and hands
// every connection it accepts to handle on a goroutine of its own, closing
// the connection when handle returns. (harness_test.go has the same for
// the external tests, which cannot call this one.)
func serveConns(t testing.TB, handle func(c net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

// waitClosed waits until the server has closed a connection.
func (s *rawServer) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not close its connection")
	}
}

func testPool(fallback http.RoundTripper) *Pool {
	d := &net.Dialer{Timeout: time.Second}
	return New(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}, fallback, 4, time.Minute, nil)
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func get(t *testing.T, p *Pool, method, addr string, body io.Reader) (string, error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+"/x", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b), err
}

func (p *Pool) idleCount(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[addr])
}

// failingRoundTripper records that it was asked.
type recordingRoundTripper struct{ calls atomic.Int32 }

func (r *recordingRoundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	r.calls.Add(1)
	return nil, errors.New("fallback called")
}

func TestH1PoolReusesConnections(t *testing.T) {
	s := startRawServer(t, okResponse, okResponse, okResponse, okResponse, okResponse)
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	for i := range 5 {
		body := io.Reader(nil)
		method := http.MethodGet
		if i%2 == 1 {
			method, body = http.MethodPost, strings.NewReader("hello")
		}
		got, err := get(t, p, method, s.addr(), body)
		if err != nil || got != "200 OK ok" {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("5 requests took %d connections, want 1", n)
	}
	if n := p.idleCount(s.addr()); n != 1 {
		t.Errorf("%d idle connections after the last response, want 1", n)
	}
}

func TestH1PoolResendsBodilessRequestOnStaleConnection(t *testing.T) {
	s := startRawServer(t, okResponse) // one request per connection, then close
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	if got, err := get(t, p, http.MethodGet, s.addr(), nil); err != nil || got != "200 OK ok" {
		t.Fatalf("first request: %q, %v", got, err)
	}
	s.waitClosed(t)
	// The pooled connection is younger than probeAfter, so it is used
	// without a look and found dead by the request itself.
	if got, err := get(t, p, http.MethodGet, s.addr(), nil); err != nil || got != "200 OK ok" {
		t.Fatalf("request on the stale connection: %q, %v", got, err)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("accepted %d connections, want 2 (the stale one and a new one)", n)
	}
}

func TestH1PoolProbesLongIdleConnections(t *testing.T) {
	s := startRawServer(t, okResponse)
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	if got, err := get(t, p, http.MethodGet, s.addr(), nil); err != nil || got != "200 OK ok" {
		t.Fatalf("first request: %q, %v", got, err)
	}
	s.waitClosed(t)
	p.mu.Lock()
	p.idle[s.addr()][0].idleFrom = time.Now().Add(-2 * probeAfter)
	p.mu.Unlock()
	// A request with a body is not sent twice; the look before use finds
	// the connection closed, so it goes on a new one.
	if got, err := get(t, p, http.MethodPost, s.addr(), strings.NewReader("payload")); err != nil || got != "200 OK ok" {
		t.Fatalf("request after a long idle: %q, %v", got, err)
	}
}

// A request that cannot be sent again (a POST with a body) never goes on
// a pooled connection its peer has closed, however short its idle time:
// the pool looks first and takes a new one. (A peer that closes after it
// read the request: TestH1PoolResendsOnlyReplayableRequests.)
func TestH1PoolLooksBeforeSendingWhatItCannotResend(t *testing.T) {
	s := startRawServer(t, okResponse)
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	if _, err := get(t, p, http.MethodGet, s.addr(), nil); err != nil {
		t.Fatal(err)
	}
	s.waitClosed(t)
	if got, err := get(t, p, http.MethodPost, s.addr(), strings.NewReader("payload")); err != nil || got != "200 OK ok" {
		t.Fatalf("a POST after the peer closed the pooled connection: %q, %v, want it on a new connection", got, err)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("accepted %d connections, want 2 (the closed one and a new one)", n)
	}
}

// A pooled connection the peer reset takes no byte of the next request:
// the error says so (ErrNotSent), so that the sidecar may send a POST
// elsewhere.
func TestH1PoolSaysNothingWasSentOnResetConnection(t *testing.T) {
	reset := make(chan struct{}, 1)
	ln := serveConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		c.Write([]byte(okResponse))
		c.(*net.TCPConn).SetLinger(0) // close with a reset, as a killed process's socket with data unread
		c.Close()
		reset <- struct{}{}
	})
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	if got, err := get(t, p, http.MethodGet, ln.Addr().String(), nil); err != nil || got != "200 OK ok" {
		t.Fatalf("first request: %q, %v", got, err)
	}
	select {
	case <-reset:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not reset its connection")
	}
	// Wait until the pooled connection has seen the reset (the look
	// before use would, after probeAfter; the request must not wait that).
	p.mu.Lock()
	pc := p.idle[ln.Addr().String()][0]
	p.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for !peerClosed(pc.c) {
		if time.Now().After(deadline) {
			t.Fatal("the pooled connection never saw the reset")
		}
		time.Sleep(time.Millisecond)
	}
	// The reset came after the look before use (as it may): the write
	// fails.
	req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.exchange(context.Background(), pc, req)
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrStale) {
		t.Fatalf("a POST on a reset connection: err = %v, want ErrNotSent and ErrStale", err)
	}
}

func TestH1PoolHonoursConnectionClose(t *testing.T) {
	closing := "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
	s := startRawServer(t, closing, closing)
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	for range 2 {
		if got, err := get(t, p, http.MethodGet, s.addr(), nil); err != nil || got != "200 OK ok" {
			t.Fatalf("%q, %v", got, err)
		}
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("accepted %d connections, want 2", n)
	}
	if n := p.idleCount(s.addr()); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
}

func TestH1PoolSkipsInformationalResponses(t *testing.T) {
	s := startRawServer(t, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+okResponse)
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	if got, err := get(t, p, http.MethodPost, s.addr(), strings.NewReader("x")); err != nil || got != "200 OK ok" {
		t.Fatalf("%q, %v", got, err)
	}
}

func TestH1PoolHandsStreamsToFallback(t *testing.T) {
	s := startRawServer(t, okResponse)
	fb := &recordingRoundTripper{}
	p := testPool(fb)
	defer p.Close()
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"body of unknown length", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, "http://"+s.addr()+"/", io.NopCloser(strings.NewReader("streamed")))
			r.ContentLength = -1
			return r
		}},
		{"body over the limit", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, "http://"+s.addr()+"/", strings.NewReader(strings.Repeat("x", FastBodyMax+1)))
			return r
		}},
		{"upgrade", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://"+s.addr()+"/", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := p.RoundTrip(tt.req()); err == nil || err.Error() != "fallback called" {
				t.Fatalf("err = %v, want the fallback's", err)
			}
			if n := fb.calls.Load(); n != int32(i+1) {
				t.Fatalf("fallback called %d times, want %d", n, i+1)
			}
		})
	}
	if n := s.accepted.Load(); n != 0 {
		t.Errorf("the pool itself dialed %d connections, want 0", n)
	}
}

func TestH1PoolCancelClosesConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gone := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		// Half a body, then nothing until the client goes away.
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!"))
		c.Read(make([]byte, 1))
		close(gone)
	}()
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("reading on after the cancel: no error")
	}
	resp.Body.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open after the request was cancelled")
	}
	if n := p.idleCount(ln.Addr().String()); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
}

func TestH1PoolExpiresIdleConnections(t *testing.T) {
	s := startRawServer(t, okResponse, okResponse)
	p := testPool(&recordingRoundTripper{})
	defer p.Close()
	if _, err := get(t, p, http.MethodGet, s.addr(), nil); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.idle[s.addr()][0].idleFrom = time.Now().Add(-2 * p.idleFor)
	p.mu.Unlock()
	p.expire()
	if n := p.idleCount(s.addr()); n != 0 {
		t.Fatalf("%d idle connections after expiry, want 0", n)
	}
	s.waitClosed(t)
}

// testLimit is a ConnLimit whose queue says when a request joins it.
type testLimit struct {
	max    int
	places atomic.Int32 // queue places left
	queued chan struct{}
}

func (l *testLimit) MaxConns() int { return l.max }

func (l *testLimit) Queue() (func(), bool) {
	if l.places.Add(-1) < 0 {
		l.places.Add(1)
		return nil, false
	}
	l.queued <- struct{}{}
	return func() { l.places.Add(1) }, true
}

func TestH1PoolCapsOpenConnections(t *testing.T) {
	s := startRawServer(t, okResponse, okResponse, okResponse)
	other := startRawServer(t, okResponse)
	lim := &testLimit{max: 1, queued: make(chan struct{}, 4)}
	lim.places.Store(1)
	d := &net.Dialer{Timeout: time.Second}
	p := New(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}, &recordingRoundTripper{}, 4, time.Minute, lim)
	defer p.Close()

	// An idle connection to another address gives way to a new one.
	if got, err := get(t, p, http.MethodGet, other.addr(), nil); err != nil || got != "200 OK ok" {
		t.Fatalf("request to the other address: %q, %v", got, err)
	}
	first, err := http.NewRequest(http.MethodGet, "http://"+s.addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := p.RoundTrip(first) // its body unread: the one connection is busy
	if err != nil {
		t.Fatal(err)
	}
	other.waitClosed(t)

	// A second request waits in the queue for the busy connection...
	done := make(chan string, 1)
	go func() {
		got, err := get(t, p, http.MethodGet, s.addr(), nil)
		if err != nil {
			got = err.Error()
		}
		done <- got
	}()
	select {
	case <-lim.queued:
	case <-time.After(5 * time.Second):
		t.Fatal("the second request did not queue")
	}
	// ...a third finds the queue full...
	if _, err := get(t, p, http.MethodGet, s.addr(), nil); !errors.Is(err, ErrConnOverflow) {
		t.Fatalf("third request: err = %v, want ErrConnOverflow", err)
	}
	// ...and the second goes once the first is done, on its connection.
	io.Copy(io.Discard, busy.Body)
	busy.Body.Close()
	select {
	case got := <-done:
		if got != "200 OK ok" {
			t.Fatalf("the queued request: %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued request never went")
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("the capped pool opened %d connections to the server, want 1", n)
	}

	// A queued request gives up when its context ends.
	held, err := p.RoundTrip(first.Clone(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Body.Close()
	ctx, cancel := context.WithCancel(context.Background())
	waiting, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr()+"/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := p.RoundTrip(waiting)
		errc <- err
	}()
	<-lim.queued
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled while queued: err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled request stayed queued")
	}
	if n := lim.places.Load(); n != 1 {
		t.Errorf("%d queue places free after every request left, want 1", n)
	}
}

// dropServer answers the first request of each connection, then reads
// the second and closes the connection without an answer: to the pool,
// a stale connection, though the server did get the request.
type dropServer struct {
	ln      net.Listener
	dropped chan string // the method of every request read and left unanswered
	served  chan string // the method of every request answered
}

func startDropServer(t *testing.T) *dropServer {
	t.Helper()
	s := &dropServer{dropped: make(chan string, 16), served: make(chan string, 16)}
	s.ln = serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		s.served <- req.Method
		c.Write([]byte(okResponse))
		if req, err = http.ReadRequest(br); err == nil {
			s.dropped <- req.Method
		}
	})
	return s
}

// count drains ch and returns how many of its methods are method.
func count(ch chan string, method string) int {
	n := 0
	for {
		select {
		case m := <-ch:
			if m == method {
				n++
			}
		default:
			return n
		}
	}
}

// TestH1PoolResendsOnlyReplayableRequests: a request that meets a stale
// pooled connection after the peer read it is sent again only when
// repeating it is safe (GET, HEAD, OPTIONS, TRACE, or an Idempotency-Key);
// a POST or DELETE reaches the server once and the caller gets the error.
func TestH1PoolResendsOnlyReplayableRequests(t *testing.T) {
	tests := []struct {
		method string
		hdr    http.Header
		resend bool
	}{
		{http.MethodPost, nil, false},
		{http.MethodDelete, nil, false},
		{http.MethodPut, nil, false},
		{http.MethodPatch, nil, false},
		{http.MethodGet, nil, true},
		{http.MethodHead, nil, true},
		{http.MethodOptions, nil, true},
		{http.MethodTrace, nil, true},
		{http.MethodDelete, http.Header{"Idempotency-Key": {"k1"}}, true},
		{http.MethodPost, http.Header{"X-Idempotency-Key": {"k2"}}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.method, tt.hdr), func(t *testing.T) {
			s := startDropServer(t)
			p := testPool(&recordingRoundTripper{})
			defer p.Close()
			addr := s.ln.Addr().String()
			if got, err := get(t, p, http.MethodGet, addr, nil); err != nil || got != "200 OK ok" {
				t.Fatalf("first request: %q, %v", got, err)
			}
			<-s.served
			req, err := http.NewRequest(tt.method, "http://"+addr+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.hdr {
				req.Header[k] = v
			}
			resp, err := p.RoundTrip(req)
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			// The server read the request on the pooled connection
			// before it closed it.
			select {
			case m := <-s.dropped:
				if m != tt.method {
					t.Fatalf("the server dropped a %s, want %s", m, tt.method)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the server never read the request on the pooled connection")
			}
			if !tt.resend {
				if !errors.Is(err, ErrStale) {
					t.Errorf("%s on a stale connection: %v, want the stale-connection error", tt.method, err)
				}
				if errors.Is(err, ErrNotSent) {
					t.Errorf("%s the server read: %v, want no ErrNotSent", tt.method, err)
				}
				if n := count(s.served, tt.method); n != 0 {
					t.Errorf("the server got the %s %d more times: it was sent again", tt.method, n)
				}
				return
			}
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s on a stale connection: %v, want 200 from a resend", tt.method, err)
			}
			if n := count(s.served, tt.method); n != 1 {
				t.Errorf("the server answered %d resends of the %s, want 1", n, tt.method)
			}
		})
	}
}

// gatedBody is a request body whose reads after its io.EOF wait until open
// is closed: it puts the fallback transport's extra read, past the
// declared length, after the handler's response headers, where load puts
// it at times.
type gatedBody struct {
	io.ReadCloser
	open chan struct{}
	eof  bool
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.eof {
		<-b.open
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// TestH1PoolFallbackKeepsResponseAfterServerClosesBody: a handler of a
// net/http server sends its request on through the pool to the fallback
// transport (a body over FastBodyMax) and answers with the response. The
// server closes the request body when the handler's headers go out (the
// body was read to its end); the transport's check for more after the
// declared length comes later. That check must not fail: a failure closes
// the connection under the response being copied (the sidecar's
// "ReverseProxy read error during body copy", a 200 with a short body).
func TestH1PoolFallbackKeepsResponseAfterServerClosesBody(t *testing.T) {
	reqBody := strings.Repeat("q", FastBodyMax+1)
	respBody := strings.Repeat("r", 256<<10) // more than the transport reads ahead
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, err := io.ReadAll(r.Body); err != nil || string(b) != reqBody {
			http.Error(w, fmt.Sprintf("read %d bytes (%v), want %d", len(b), err, len(reqBody)), http.StatusBadRequest)
			return
		}
		io.WriteString(w, respBody)
	}))
	defer backend.Close()
	fallback := &http.Transport{}
	defer fallback.CloseIdleConnections()
	p := testPool(fallback)
	defer p.Close()

	type outcome struct{ wrote, copied error }
	outcomes := make(chan outcome, 1)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := &gatedBody{ReadCloser: r.Body, open: make(chan struct{})}
		wrote := make(chan error, 1)
		ctx := httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
			WroteRequest: func(i httptrace.WroteRequestInfo) { wrote <- i.Err },
		})
		out, err := http.NewRequestWithContext(ctx, http.MethodPost, backend.URL+"/", body)
		if err != nil {
			t.Error(err)
			return
		}
		out.ContentLength = r.ContentLength
		resp, err := p.RoundTrip(out)
		if err != nil {
			close(body.open)
			http.Error(w, err.Error(), http.StatusBadGateway)
			outcomes <- outcome{wrote: err}
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		// The headers go out; the server reads r.Body to its end and
		// closes it.
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Error(err)
		}
		close(body.open)
		var o outcome
		select {
		case o.wrote = <-wrote:
		case <-time.After(5 * time.Second):
			o.wrote = errors.New("the transport did not finish writing the request within 5s")
		}
		_, o.copied = io.Copy(w, resp.Body)
		outcomes <- o
	}))
	defer front.Close()

	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Post(front.URL+"/", "text/plain", strings.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	got, readErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	var o outcome
	select {
	case o = <-outcomes:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not finish within 10s")
	}
	if o.wrote != nil {
		t.Errorf("writing the request through the fallback: %v; want no error (a read after the body's end must not reach the closed body)", o.wrote)
	}
	if o.copied != nil {
		t.Errorf("copying the response: %v", o.copied)
	}
	if resp.StatusCode != 200 || readErr != nil || string(got) != respBody {
		t.Errorf("response: %d, %d bytes (%v); want 200 with %d bytes", resp.StatusCode, len(got), readErr, len(respBody))
	}
}
