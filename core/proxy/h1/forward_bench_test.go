package h1_test

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/h1"
)

// benchRequest is a typical request of a service calling another.
const benchRequest = "GET /bench?x=1 HTTP/1.1\r\nHost: app.weft\r\nUser-Agent: bench/1\r\nAccept: */*\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"

// benchResponse is what benchApp answers every request head with.
const benchResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Sat, 05 Dec 2026 07:00:00 GMT\r\nContent-Length: 5\r\n\r\nhello"

// benchApp serves benchResponse to every request head (bodies are not
// read: the benchmark sends none) on loopback, allocating nothing per
// request.
func benchApp(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 16<<10)
				resp := []byte(benchResponse)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					for {
						i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						if _, err := c.Write(resp); err != nil {
							return
						}
						n = copy(buf, buf[i+4:n])
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// serveForwarder runs f on a loopback listener and returns its address.
func serveForwarder(tb testing.TB, f *h1.Forwarder) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.ServeConn(c)
		}
	}()
	return ln.Addr().String()
}

func benchForwarder(app string) *h1.Forwarder {
	s := protect.Defaults()
	return &h1.Forwarder{
		Limits: h1.Limits{MaxHeaderBytes: s.MaxHeaderBytes, MaxHeaderCount: s.MaxHeaderCount},
		Dial:   func() (net.Conn, error) { return net.Dial("tcp", app) },
		Host:   app,
		Remove: []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"},
		Set: []h1.Field{
			{Name: []byte("X-Weft-Caller"), Value: []byte("spiffe://weft.test/ns/default/svc/web")},
			{Name: []byte("X-Forwarded-Client-Cert"), Value: []byte("By=spiffe://weft.test/ns/default/svc/api;URI=spiffe://weft.test/ns/default/svc/web")},
		},
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
	}
}

// roundTrips sends req on c b.N times, reading a response of the length
// the first one had: one request after another on a keep-alive
// connection, the shape of BenchmarkHTTPChain's.
func roundTrips(b *testing.B, c net.Conn, req string) {
	if _, err := io.WriteString(c, req); err != nil {
		b.Fatal(err)
	}
	first := make([]byte, 4096)
	n := 0
	for {
		m, err := c.Read(first[n:])
		if err != nil {
			b.Fatal(err)
		}
		n += m
		if i := bytes.Index(first[:n], []byte("\r\n\r\n")); i >= 0 && n >= i+4+5 {
			break
		}
	}
	if !bytes.HasPrefix(first, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.HasSuffix(first[:n], []byte("hello")) {
		b.Fatalf("first response:\n%s", first[:n])
	}
	resp := first[:n]
	reqb := []byte(req)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(reqb); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForward sends one request and reads its response at a time
// through the forwarder, client, forwarder and app on loopback TCP: the
// allocations per request of the whole process (client and app
// allocate nothing per request), and its CPU time.
//
//	go test -run - -bench Forward -benchmem ./core/proxy/h1
func BenchmarkForward(b *testing.B) {
	addr := serveForwarder(b, benchForwarder(benchApp(b)))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	roundTrips(b, c, benchRequest)
}

// BenchmarkForwardDirect is BenchmarkForward without the forwarder: what
// the client and app cost on their own.
func BenchmarkForwardDirect(b *testing.B) {
	c, err := net.Dial("tcp", benchApp(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	roundTrips(b, c, benchRequest)
}
