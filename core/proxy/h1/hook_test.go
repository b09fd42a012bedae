package h1_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/proxy/h1"
)

// testHook answers /deny itself, hands /handoff off, and forwards the
// rest with X-Hooked set and X-Secret removed; it records each status
// Done sees.
type testHook struct {
	mu       sync.Mutex
	statuses []int
}

func (h *testHook) Request(x *h1.Exchange) h1.Verdict {
	switch x.Req.Path {
	case "/deny":
		x.Answer(http.StatusForbidden, []h1.Field{{Name: []byte("X-Why"), Value: []byte("hook")}}, []byte("no\n"))
		return h1.Answered
	case "/handoff":
		return h1.HandOff
	}
	x.Set = append(x.Set, h1.Field{Name: []byte("X-Hooked"), Value: []byte("yes")})
	return h1.Forward
}

func (h *testHook) Remove(name []byte) bool { return strings.EqualFold(string(name), "X-Secret") }

func (h *testHook) Done(x *h1.Exchange) {
	h.mu.Lock()
	h.statuses = append(h.statuses, x.Status)
	h.mu.Unlock()
}

// TestHook: on one connection with pipelined requests, a hook's answer
// keeps the connection, a forwarded request carries the hook's fields
// and not those it removes (not even one the client spelled as the
// hook's), Done sees every exchange before its response is read, and a
// hand-off returns the bytes read and not used: the handed request and
// the one after it.
func TestHook(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path+" hooked="+strings.Join(r.Header.Values("X-Hooked"), ",")+" secret="+r.Header.Get("X-Secret"))
	}))
	defer app.Close()
	f := benchForwarder(app.Listener.Addr().String())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hook := &testHook{}
	type result struct {
		rest []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		rest, err := f.ServeConnHook(c, hook)
		done <- result{rest, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioBound))
	const after = "GET /handoff HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\nX-Secret: s\r\nX-Hooked: forged\r\n\r\n"+
		"GET /deny HTTP/1.1\r\nHost: a\r\n\r\n"+
		"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"+after)
	br := bufio.NewReader(c)
	for _, want := range []struct {
		status int
		body   string
	}{{200, "/a hooked=yes secret="}, {403, "no\n"}, {200, "/b hooked=yes secret="}} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %s: %v", want.body, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want.status || string(b) != want.body || resp.Close {
			t.Errorf("got %d %q (close %v), want %d %q on a kept connection", resp.StatusCode, b, resp.Close, want.status, want.body)
		}
	}
	select {
	case r := <-done:
		if !errors.Is(r.err, h1.ErrHandOff) || string(r.rest) != after {
			t.Errorf("ServeConnHook returned %v and %q, want ErrHandOff and %q", r.err, r.rest, after)
		}
	case <-time.After(ioBound):
		t.Fatalf("ServeConnHook did not return in %s after the hand-off", ioBound)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if got := hook.statuses; len(got) != 3 || got[0] != 200 || got[1] != 403 || got[2] != 200 {
		t.Errorf("Done saw statuses %v, want [200 403 200]", got)
	}
}
