package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
)

// floodProtection is the protection of the flood test: short header
// timeout, few connections per source and header fields.
func floodProtection() *meshapi.Protection {
	return &meshapi.Protection{
		ReadHeaderTimeout:       durationpb.New(time.Second),
		MaxConnectionsPerSource: 20,
		MaxHeaderCount:          30,
	}
}

// closedWithin waits until the server closes c (a read returns), at most
// bound, and returns how long that took.
func closedWithin(c net.Conn, bound time.Duration) (time.Duration, bool) {
	start := time.Now()
	c.SetReadDeadline(start.Add(bound))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return took, false
	}
	return took, true
}

// TestFloods: slowloris against the outbound and the inbound (mTLS)
// listeners, many connections from one source, header bombs and a burst
// above a per-IP rate limit, while a well-behaved client keeps calling
// through both sidecars: every one of its calls succeeds, the attackers
// are refused or closed, and the test prints its latency and the heap.
func TestFloods(t *testing.T) {
	app := httpApp(t, false)
	m := newMesh(t, app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	srv := serverConfig(app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	srv.Inbound.Protection = floodProtection()
	srv.Inbound.RateLimits = []*meshapi.RateLimit{{Name: "per-ip", RequestsPerSecond: 1, Burst: 5, PerSourceIp: true,
		Match: &meshapi.RouteMatch{Path: &meshapi.StringMatch{Kind: meshapi.MatchKind_MATCH_PREFIX, Value: "/limited"}}}}
	apply(t, m.server, 2, srv)
	cli := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, m.server.Addr(proxy.KeyInbound))
	cli.Protection = floodProtection()
	apply(t, m.client, 2, cli)
	inbound := m.server.Addr(proxy.KeyInbound).String()
	base := "http://" + m.outbound

	// The well-behaved client, measured alone, then through the floods.
	good := httpClient(false)
	call := func() (time.Duration, error) {
		start := time.Now()
		resp, err := good.Get(base + "/ok")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}
	p99 := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)*99/100]
	}
	var unloaded []time.Duration
	for range 300 {
		d, err := call()
		if err != nil {
			t.Fatalf("unloaded call: %v", err)
		}
		unloaded = append(unloaded, d)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse

	stop := make(chan struct{})
	var loaded []time.Duration
	var goodErrs []error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			d, err := call()
			if err != nil {
				goodErrs = append(goodErrs, err)
				continue
			}
			loaded = append(loaded, d)
		}
	})

	// Slowloris: 15 connections each to the outbound (partial headers)
	// and the inbound (a partial TLS record): each is closed within the
	// 1s header timeout, give or take.
	var slow []net.Conn
	for range 15 {
		c, err := net.Dial("tcp", m.outbound)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		slow = append(slow, c)
		c2, err := net.Dial("tcp", inbound)
		if err != nil {
			t.Fatal(err)
		}
		c2.Write([]byte{0x16, 0x03, 0x01}) // the start of a ClientHello
		slow = append(slow, c2)
	}
	var worst time.Duration
	for _, c := range slow {
		took, ok := closedWithin(c, 5*time.Second)
		c.Close()
		if !ok {
			t.Errorf("a slowloris connection to %s was still open after 5s", c.RemoteAddr())
		}
		worst = max(worst, took)
	}
	t.Logf("slowloris: 30 connections (15 outbound, 15 inbound mTLS) closed, the last %v after the first was checked", worst.Round(time.Millisecond))

	// Many connections from one source to the inbound: past 20, closed at
	// once.
	var many []net.Conn
	refused := 0
	for range 60 {
		c, err := net.Dial("tcp", inbound)
		if err != nil {
			t.Fatal(err)
		}
		many = append(many, c)
	}
	for _, c := range many {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF || (err != nil && !isTimeout(err)) {
			refused++
		}
		c.Close()
	}
	if refused < 40 {
		t.Errorf("%d of 60 connections from one source were closed at once, want at least 40 (the cap is 20)", refused)
	}
	t.Logf("connections per source: %d of 60 refused at once", refused)

	// Header bombs against the outbound: many fields, and a huge block.
	bomb := func(hdr string) string {
		c, err := net.Dial("tcp", m.outbound)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\n"+hdr+"\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line)
	}
	var many100 strings.Builder
	for i := range 100 {
		fmt.Fprintf(&many100, "X-H%d: v\r\n", i)
	}
	if got := bomb(many100.String()); !strings.Contains(got, "431") {
		t.Errorf("100 header fields: %q, want 431", got)
	}
	if got := bomb("X-Big: " + strings.Repeat("a", 200<<10) + "\r\n"); !strings.Contains(got, "431") {
		t.Errorf("a 200 KiB header: %q, want 431", got)
	}

	// A burst above the per-IP limit: 5 pass, the rest get 429.
	codes := map[int]int{}
	for range 20 {
		resp, err := good.Get(base + "/limited")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[429] < 10 || codes[200] < 1 {
		t.Errorf("a burst of 20 above a per-IP limit of 5: %v, want 429s past the burst", codes)
	}
	t.Logf("per-IP burst: %v", codes)

	close(stop)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	if len(goodErrs) > 0 {
		t.Errorf("the well-behaved client failed %d times during the floods, first: %v", len(goodErrs), goodErrs[0])
	}
	if len(loaded) < 20 {
		t.Fatalf("the well-behaved client made only %d calls during the floods", len(loaded))
	}
	pu, pl := p99(unloaded), p99(loaded)
	t.Logf("well-behaved client: %d calls unloaded p99 %v, %d calls under the floods p99 %v (ratio %.2f; 2x is the goal, measured, not asserted on a shared machine); heap in use %d KiB before, %d KiB after",
		len(unloaded), pu, len(loaded), pl, float64(pl)/float64(pu), heapBefore>>10, ms.HeapInuse>>10)

	// The intrusion signals: handshakes and connection-limit hits by
	// address, rate-limit hits by address.
	top := m.server.Guard().Top(5)
	if len(top) == 0 || top[0].Source != "127.0.0.1" || top[0].ByKind["handshake"] == 0 || top[0].ByKind["conn_limited"] == 0 || top[0].ByKind["rate_limited"] == 0 {
		t.Errorf("guard top sources = %+v, want 127.0.0.1 with handshake, conn_limited and rate_limited signals", top)
	}
	if b := m.server.Guard().BlockedSources(); len(b) != 0 {
		t.Errorf("blocked %v with blocking off", b)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestBlockingAddresses: with blocking on for addresses, a source past the
// threshold of refused handshakes is refused at accept.
func TestBlockingAddresses(t *testing.T) {
	app := httpApp(t, false)
	m := newMesh(t, app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	srv := serverConfig(app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	srv.Inbound.Protection = &meshapi.Protection{Blocking: &meshapi.ProtectionBlocking{Threshold: 5, Addresses: true,
		Window: durationpb.New(time.Minute), Duration: durationpb.New(time.Minute)}}
	apply(t, m.server, 2, srv)
	inbound := m.server.Addr(proxy.KeyInbound).String()
	for i := 0; i < 20 && !m.server.Guard().Blocked("127.0.0.1"); i++ {
		c, err := net.Dial("tcp", inbound)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\n\r\n") // not TLS
		closedWithin(c, wait)
		c.Close()
	}
	if !m.server.Guard().Blocked("127.0.0.1") {
		t.Fatalf("not blocked after 20 refused handshakes, threshold 5: %+v", m.server.Guard().Top(3))
	}
	// Now even a good client is refused (it shares the address).
	resp, err := httpClient(false).Get("http://" + m.outbound + "/ok")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a blocked address got through")
		}
	}
	m.server.Guard().Unblock("127.0.0.1")
	if resp, _ := get(t, httpClient(false), "http://"+m.outbound+"/ok", nil); resp.StatusCode != 200 {
		t.Errorf("after Unblock: %d", resp.StatusCode)
	}
}
