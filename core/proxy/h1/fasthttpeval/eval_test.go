package fasthttpeval

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/h1"
)

// The same request, application and client as core/proxy/h1's
// BenchmarkForward.
const (
	request  = "GET /bench?x=1 HTTP/1.1\r\nHost: app.weft\r\nUser-Agent: bench/1\r\nAccept: */*\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"
	response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Sat, 05 Dec 2026 07:00:00 GMT\r\nContent-Length: 5\r\n\r\nhello"
	caller   = "spiffe://weft.test/ns/default/svc/web"
	xfcc     = "By=spiffe://weft.test/ns/default/svc/api;URI=spiffe://weft.test/ns/default/svc/web"
)

var removed = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

func listen(tb testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// app answers every request head with response, allocating nothing.
func app(tb testing.TB) string {
	ln := listen(tb)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf, resp, n := make([]byte, 16<<10), []byte(response), 0
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

func roundTrips(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, request); err != nil {
		b.Fatal(err)
	}
	first, n := make([]byte, 4096), 0
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
	resp, req := first[:n], []byte(request)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFastHTTPProxy forwards with fasthttp: a fasthttp.Server whose
// handler makes the same header changes and sends the request on with a
// fasthttp.HostClient (its pooled keep-alive connections).
func BenchmarkFastHTTPProxy(b *testing.B) {
	hc := &fasthttp.HostClient{Addr: app(b), MaxConns: 64}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			req := &ctx.Request
			for _, h := range removed {
				req.Header.Del(h)
			}
			req.Header.Set("X-Weft-Caller", caller)
			req.Header.Set("X-Forwarded-Client-Cert", xfcc)
			if err := hc.Do(req, &ctx.Response); err != nil {
				ctx.Error("weft: calling the upstream: "+err.Error(), fasthttp.StatusBadGateway)
			}
		},
		MaxRequestBodySize:    0,
		ReadBufferSize:        8 << 10,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
	}
	ln := listen(b)
	go srv.Serve(ln)
	roundTrips(b, ln.Addr().String())
}

// BenchmarkH1Forwarder is core/proxy/h1's BenchmarkForward, here so that
// both run in one process, one after the other.
func BenchmarkH1Forwarder(b *testing.B) {
	addr := app(b)
	s := protect.Defaults()
	f := &h1.Forwarder{
		Limits: h1.Limits{MaxHeaderBytes: s.MaxHeaderBytes, MaxHeaderCount: s.MaxHeaderCount},
		Dial:   func() (net.Conn, error) { return net.Dial("tcp", addr) },
		Host:   addr,
		Remove: removed,
		Set: []h1.Field{
			{Name: []byte("X-Weft-Caller"), Value: []byte(caller)},
			{Name: []byte("X-Forwarded-Client-Cert"), Value: []byte(xfcc)},
		},
	}
	ln := listen(b)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.ServeConn(c)
		}
	}()
	roundTrips(b, ln.Addr().String())
}
