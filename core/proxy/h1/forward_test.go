package h1_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// oneShotApp answers one request per connection and closes it, without
// saying so (no Connection: close): the kept-alive connection a proxy
// holds to it goes stale under the next request. It counts connections.
func oneShotApp(t *testing.T, conns *atomic.Int32) string {
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
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, r.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	return ln.Addr().String()
}

// TestStaleUpstream: a GET that meets a kept-alive upstream connection
// the upstream has closed goes again on a new one; a POST does not (it
// may have been taken) and is answered 502.
func TestStaleUpstream(t *testing.T) {
	var conns atomic.Int32
	addr := serveForwarder(t, benchForwarder(oneShotApp(t, &conns)))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioBound))
	br := bufio.NewReader(c)
	send := func(raw, method string) int {
		t.Helper()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for i := 0; i < 3; i++ {
		if st := send("GET /a HTTP/1.1\r\nHost: app\r\n\r\n", "GET"); st != 200 {
			t.Fatalf("GET %d: status %d, want 200 on a new upstream connection", i+1, st)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d upstream connections for 3 requests, want 3", n)
	}
	if st := send("POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: 1\r\n\r\nx", "POST"); st != http.StatusBadGateway {
		t.Fatalf("POST on a stale connection: status %d, want 502", st)
	}
}

// TestPipelinedResponsesInOrder sends ten requests in one write and reads
// ten responses, each for its own request, in order.
func TestPipelinedResponsesInOrder(t *testing.T) {
	oldPath, newPath := servePaths(t, &recorder{})
	var raw bytes.Buffer
	var methods []string
	for i := 0; i < 10; i++ {
		m := []string{"GET", "HEAD", "DELETE"}[i%3]
		raw.WriteString(m + " /n" + strings.Repeat("x", i) + " HTTP/1.1\r\nHost: app\r\n\r\n")
		methods = append(methods, m)
	}
	old, _ := exchange(t, oldPath, raw.Bytes(), methods)
	got, _ := exchange(t, newPath, raw.Bytes(), methods)
	if old != got {
		t.Fatalf("net/http's path:\n%s\nh1:\n%s", old, got)
	}
	if n := strings.Count("\n"+got, "\n200\n"); n != 10 {
		t.Fatalf("want 10 responses of 200:\n%s", got)
	}
}

// TestBodyLimit: with Limits.MaxBodyBytes, a declared length over it is
// answered 413 before any byte goes on, and a chunked body that grows
// over it is cut off before the chunk that passes it is read; the app
// never receives a whole request.
func TestBodyLimit(t *testing.T) {
	app := &recorder{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f := benchForwarder(ln.Addr().String())
	f.Limits.MaxBodyBytes = 8
	addr := serveForwarder(t, f)
	for _, tc := range []struct{ name, raw string }{
		{"content-length", "POST /echo HTTP/1.1\r\nHost: app\r\nContent-Length: 9\r\n\r\n123456789"},
		{"chunked", "POST /echo HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n4\r\n6789\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, first := exchange(t, addr, []byte(tc.raw), []string{"POST"})
			if first != http.StatusRequestEntityTooLarge {
				t.Fatalf("got %d, want 413:\n%s", first, resp)
			}
			for _, s := range app.take() {
				if !strings.Contains(s, bodyCut) {
					t.Fatalf("the app received a whole request:\n%s", s)
				}
			}
		})
	}
	resp, first := exchange(t, addr, []byte("POST /echo HTTP/1.1\r\nHost: app\r\nContent-Length: 8\r\n\r\n12345678"), []string{"POST"})
	if first != 200 {
		t.Fatalf("a body of the limit: got %d, want 200:\n%s", first, resp)
	}
}
