package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
)

// idleConns is how many idle connections BenchmarkIdleConnMemory opens:
// with fewer the figure swings with the garbage collector's timing.
const idleConns = 1000

// envIdleHeapProfile names a file BenchmarkIdleConnMemory writes a heap
// profile to while its connections are open and idle.
const envIdleHeapProfile = "WEFT_IDLE_HEAPPROFILE"

// BenchmarkIdleConnMemory is what an idle connection costs the two
// sidecars (the caller's outbound and the callee's inbound) in Go heap
// and goroutine stacks, after garbage collection, for 1,000 connections:
//
//   - keepalive: an app's HTTP/1.1 keep-alive connection to its outbound
//     after one request (the sidecars' pooled mTLS connections between
//     them are shared, so the figure is the outbound's);
//   - tcp: a TCP connection through both sidecars after one 64-byte
//     echo (one mTLS connection between the sidecars each, TLS state
//     included).
//
// The test's own connection ends (and, for tcp, the app's) are measured
// alone and taken off. With the byte-level engine:
//
//	WEFT_HTTP1_ENGINE=bytes go test -run - -bench IdleConnMemory -benchtime 1x ./core/proxy/
//
// WEFT_IDLE_HEAPPROFILE=FILE writes a heap profile of the idle state.
func BenchmarkIdleConnMemory(b *testing.B) {
	b.Run("keepalive", func(b *testing.B) {
		outbound := quietMesh(b, httpApp(b, false), meshapi.Protocol_PROTOCOL_HTTP)
		ends := connEnds(b)
		req := []byte("GET /idle HTTP/1.1\r\nHost: api\r\n\r\n")
		for range b.N {
			per := idleCost(b, outbound, func(c net.Conn) {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			})
			b.ReportMetric((per-ends/2)/1024, "KiB/conn")
		}
	})
	b.Run("tcp", func(b *testing.B) {
		app := idleEchoApp(b)
		outbound := quietMesh(b, app, meshapi.Protocol_PROTOCOL_TCP)
		echo := func(c net.Conn) {
			var msg [64]byte
			if _, err := c.Write(msg[:]); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, msg[:]); err != nil {
				b.Fatal(err)
			}
		}
		for range b.N {
			direct := idleCost(b, app.String(), echo) // the test's ends and the app's
			per := idleCost(b, outbound, echo)
			b.ReportMetric((per-direct)/1024, "KiB/conn")
		}
	})
}

// quietMesh is newMesh's pair of sidecars with their logs dropped (a
// log kept in memory would be counted); it returns the outbound's address.
func quietMesh(b *testing.B, app net.Addr, proto meshapi.Protocol) string {
	ca := newCA(b)
	quiet := func(svc string) *proxy.Proxy {
		p := proxy.New(proxy.Options{Log: io.Discard, DrainTimeout: 2 * time.Second})
		setCreds(b, p, ca, svc)
		b.Cleanup(func() { p.Close() })
		return p
	}
	server, client := quiet("api"), quiet("web")
	apply(b, server, 1, serverConfig(app, proto, allowWeb()))
	apply(b, client, 1, clientConfig(proto, apiID, server.Addr(proxy.KeyInbound)))
	return client.Addr(proxy.KeyUpstream("api")).String()
}

// idleCost opens idleConns connections to addr, runs use on each, and
// returns the heap and stacks they hold, idle, per connection, in bytes.
func idleCost(b *testing.B, addr string, use func(net.Conn)) float64 {
	b.Helper()
	before, stacksBefore := inUse()
	conns := make([]net.Conn, 0, idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range idleConns {
		c, err := net.DialTimeout("tcp", addr, wait)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(wait))
		use(c)
		c.SetDeadline(time.Time{})
	}
	after, stacks := inUse()
	b.Logf("%s: %.2f KiB of stacks per connection", addr, float64(int64(stacks)-int64(stacksBefore))/idleConns/1024)
	if f := os.Getenv(envIdleHeapProfile); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		pprof.WriteHeapProfile(out)
		out.Close()
	}
	return float64(int64(after)-int64(before)) / idleConns
}

// connEnds is what both ends of a loopback TCP connection cost, idle,
// with no goroutine reading either.
func connEnds(b *testing.B) float64 {
	ln := listen(b)
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var held []net.Conn // the accepted ends, kept while measured
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	return idleCost(b, ln.Addr().String(), func(net.Conn) {
		select {
		case c := <-accepted:
			held = append(held, c)
		case <-time.After(wait):
			b.Fatal("no connection accepted")
		}
	})
}

// idleEchoApp echoes what it reads, one goroutine and 64 bytes per
// connection.
func idleEchoApp(b *testing.B) net.Addr {
	return serveConns(b, func(c net.Conn) {
		var buf [64]byte
		for {
			n, err := c.Read(buf[:])
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
}

// inUse is the heap and the stacks in use after garbage collection; a
// few cycles, so that the stacks of parked goroutines have shrunk.
func inUse() (all, stacks uint64) {
	var m runtime.MemStats
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, m.StackInuse
}
