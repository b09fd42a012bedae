package proxy_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
)

// BenchmarkHTTPChain sends HTTP/1.1 requests through two sidecars (the
// client's outbound, mTLS, the server's inbound) to an app, one at a time
// on a keep-alive connection: the CPU and allocations of one request
// through the mesh, both proxies together. make bench runs the numbers
// against HAProxy; this one is for profiling:
//
//	go test -run - -bench HTTPChain -benchmem -cpuprofile cpu.out ./core/proxy
func BenchmarkHTTPChain(b *testing.B) {
	m := newMesh(b, httpApp(b, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	getLoop(b, c, "http://"+m.outbound+"/bench")
}

// getLoop GETs url with c for the benchmark's loop, each answer read
// whole and required to be 200.
func getLoop(b *testing.B, c *http.Client, url string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkHTTPChainTracing is BenchmarkHTTPChain with tracing off, at
// 1% and at 100% of new traces sampled, exporting to an OTLP/HTTP
// collector on loopback: what tracing costs a request, both proxies
// together. Off must allocate no more than BenchmarkHTTPChain.
func BenchmarkHTTPChainTracing(b *testing.B) {
	for _, bc := range []struct {
		name     string
		sampling float64
		on       bool
	}{{"off", 0, false}, {"sampled=1%", 0.01, true}, {"sampled=100%", 1, true}} {
		b.Run(bc.name, func(b *testing.B) {
			var tr *meshapi.Tracing
			if bc.on {
				tr = tracingConfig(newCollector(b, false).addr, bc.sampling, 512, 4096)
			}
			m := traceMesh(b, tr)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			url := "http://" + m.outbound + "/bench"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
