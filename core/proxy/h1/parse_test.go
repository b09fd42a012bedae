package h1_test

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
	"unsafe"

	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/h1"
)

func defaultLimits() h1.Limits {
	s := protect.Defaults()
	return h1.Limits{MaxHeaderBytes: s.MaxHeaderBytes, MaxHeaderCount: s.MaxHeaderCount}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name, raw  string
		n          int // 0: incomplete
		status     int // of the refusal; 0: none
		path, host string
		fields     int
	}{
		{name: "whole", raw: "GET /a/../b?x HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\nrest", n: 41, path: "/b", host: "h", fields: 2},
		{name: "incomplete", raw: "GET /a HTTP/1.1\r\nHost: h\r\n"},
		{name: "incomplete-cr", raw: "GET /a HTTP/1.1\r\nHost: h\r\n\r"},
		{name: "absolute", raw: "GET http://o:8/p HTTP/1.1\r\nHost: h\r\n\r\n", n: 38, path: "/p", host: "o:8", fields: 1},
		{name: "bare-lf", raw: "GET /a HTTP/1.1\nHost: h\n\n", status: 400},
		{name: "bare-cr", raw: "GET /a HTTP/1.1\rHost: h\r\n\r\n", status: 400},
		{name: "too-long", raw: "GET /a HTTP/1.1\r\nX: " + strings.Repeat("a", 70<<10), status: 431},
		{name: "version", raw: "GET /a HTTP/1.2\r\nHost: h\r\n\r\n", status: 505},
		{name: "expect", raw: "GET /a HTTP/1.1\r\nHost: h\r\nExpect: x\r\n\r\n", status: 417},
		{name: "te", raw: "GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", status: 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r h1.Request
			n, err := h1.ParseRequest([]byte(tc.raw), defaultLimits(), &r)
			if tc.status != 0 {
				if err == nil || err.Status != tc.status {
					t.Fatalf("got n=%d err=%v, want a refusal with %d", n, err, tc.status)
				}
				if err.Msg == "" {
					t.Fatal("a refusal without a message")
				}
				return
			}
			if err != nil || n != tc.n {
				t.Fatalf("got n=%d err=%v, want n=%d", n, err, tc.n)
			}
			if n == 0 {
				return
			}
			if r.Path != tc.path || string(r.Host) != tc.host || len(r.Fields) != tc.fields {
				t.Fatalf("got path %q host %q %d fields, want %q %q %d", r.Path, r.Host, len(r.Fields), tc.path, tc.host, tc.fields)
			}
		})
	}
}

// FuzzParseRequest holds ParseRequest to its contract on any bytes: no
// panic, a head no longer than the buffer and the limit, fields that are
// slices of the head, a canonical path, and nothing accepted that
// net/http's reader refuses (h1 is the stricter of the two).
//
//	go test -run '^$' -fuzz '^FuzzParseRequest$' -fuzztime 10s ./core/proxy/h1
func FuzzParseRequest(f *testing.F) {
	for _, file := range []string{"testdata/valid.txt", "testdata/refused.txt"} {
		for _, c := range readCorpus(f, file) {
			f.Add(c.raw)
		}
	}
	lim := h1.Limits{MaxHeaderBytes: 4096, MaxHeaderCount: 20}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r h1.Request
		n, err := h1.ParseRequest(raw, lim, &r)
		if err != nil {
			if n != 0 || err.Msg == "" || err.Status < 400 {
				t.Fatalf("refusal %d %q with n=%d", err.Status, err.Msg, n)
			}
			return
		}
		if n == 0 {
			return
		}
		if n > len(raw) || n > lim.MaxHeaderBytes {
			t.Fatalf("head of %d bytes from %d, limit %d", n, len(raw), lim.MaxHeaderBytes)
		}
		head := raw[:n]
		within := func(b []byte) bool {
			if len(b) == 0 {
				return true
			}
			lo, hi := uintptr(unsafe.Pointer(&head[0])), uintptr(unsafe.Pointer(&head[n-1]))
			return uintptr(unsafe.Pointer(&b[0])) >= lo && uintptr(unsafe.Pointer(&b[len(b)-1])) <= hi
		}
		for _, fl := range r.Fields {
			if len(fl.Name) == 0 || !within(fl.Name) || !within(fl.Value) {
				t.Fatalf("field %q: %q outside the head", fl.Name, fl.Value)
			}
		}
		if r.Path != "*" && !strings.HasPrefix(r.Path, "/") {
			t.Fatalf("path %q", r.Path)
		}
		req, rerr := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if rerr != nil {
			t.Fatalf("h1 took a head net/http refuses (%v):\n%q", rerr, head)
		}
		if req.Method != string(r.Method) {
			t.Fatalf("method %q, net/http read %q", r.Method, req.Method)
		}
	})
}

// FuzzParseResponse holds ParseResponse to its contract on any bytes, as
// FuzzParseRequest does ParseRequest: no panic, a head within the buffer
// and the limit, and nothing accepted that net/http's reader refuses.
//
//	go test -run '^$' -fuzz '^FuzzParseResponse$' -fuzztime 10s ./core/proxy/h1
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nbody",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n0\r\nX: 1\r\n\r\n",
		"HTTP/1.1 200\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 999 Odd\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	lim := h1.Limits{MaxHeaderBytes: 4096, MaxHeaderCount: 20}
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		var p h1.Response
		n, err := h1.ParseResponse(raw, lim, head, &p)
		if err != nil {
			if n != 0 || err.Msg == "" || err.Status < 400 {
				t.Fatalf("refusal %d %q with n=%d", err.Status, err.Msg, n)
			}
			return
		}
		if n == 0 {
			return
		}
		if n > len(raw) || n > lim.MaxHeaderBytes {
			t.Fatalf("head of %d bytes from %d, limit %d", n, len(raw), lim.MaxHeaderBytes)
		}
		if p.Status < 100 || p.Status > 999 {
			t.Fatalf("status %d", p.Status)
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw[:n])), &http.Request{Method: method})
		if rerr != nil {
			t.Fatalf("h1 took a head net/http refuses (%v):\n%q", rerr, raw[:n])
		}
		if resp.StatusCode != p.Status {
			t.Fatalf("status %d, net/http read %d", p.Status, resp.StatusCode)
		}
	})
}
