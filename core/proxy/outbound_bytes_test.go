package proxy_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// fakePeer is an api sidecar played by the test: a TLS listener with the
// api identity that reads each request head (its body, when it has a
// Content-Length) and lets act answer on the raw connection; act returns
// false to close it. It counts the requests it read.
func fakePeer(t *testing.T, ca *proxytest.CA, act func(n int64, r *http.Request, c net.Conn) bool) (net.Addr, *atomic.Int64) {
	t.Helper()
	cert, err := ca.Leaf("default", "api", proxytest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	var n atomic.Int64
	addr := serveConns(t, func(raw net.Conn) {
		c := tls.Server(raw, cfg)
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if !act(n.Add(1), r, c) {
				return
			}
		}
	})
	return addr, &n
}

// bytesWeb starts a web proxy whose outbound runs the byte-level engine,
// its upstream api's endpoints eps, with routes.
func bytesWeb(t *testing.T, ca *proxytest.CA, routes []*meshapi.Route, eps ...net.Addr) (*proxy.Proxy, string) {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second, HTTP1Engine: proxy.HTTP1Bytes})
	setCreds(t, p, ca, "web")
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log of the web proxy:\n%s", lb)
		}
	})
	cfg := clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, eps...)
	cfg.Upstreams[0].Routes = routes
	apply(t, p, 1, cfg)
	return p, p.Addr(proxy.KeyUpstream("api")).String()
}

// dialOut opens a plain connection to an outbound, its deadline wait.
func dialOut(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wait))
	return c, bufio.NewReader(c)
}

// readResp reads one response (to a request of method) and its body.
func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string, error) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// TestOutboundBytesHostile: the byte-level outbound with what a client
// or a peer may do: a head over the limit, pipelined requests, a chunked
// body (handed to net/http), HEAD, Expect: 100-continue, Connection:
// close, and a peer that dies in the middle of a response.
func TestOutboundBytesHostile(t *testing.T) {
	ca := newCA(t)
	app := startSeenApp(t, false)
	api, _ := engineProxy(t, ca, proxy.HTTP1NetHTTP, app, allowWeb())
	p, out := bytesWeb(t, ca, nil, api.Addr(proxy.KeyInbound))

	t.Run("head over the limit", func(t *testing.T) {
		c, br := dialOut(t, out)
		fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: api\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 200<<10))
		resp, _, err := readResp(t, br, "GET")
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%v %v; want 431", resp, err)
		}
		if n := len(app.take()); n != 0 {
			t.Errorf("the app saw %d requests, want none", n)
		}
	})

	t.Run("pipelined", func(t *testing.T) {
		before := p.BytesServed()
		c, br := dialOut(t, out)
		io.WriteString(c, crlf("GET /1 HTTP/1.1\nHost: api\n\nPOST /2 HTTP/1.1\nHost: api\nContent-Length: 3\n\nabcHEAD /3 HTTP/1.1\nHost: api\n\nGET /4 HTTP/1.1\nHost: api\n\n"))
		for i, m := range []string{"GET", "POST", "HEAD", "GET"} {
			resp, body, err := readResp(t, br, m)
			if err != nil {
				t.Fatalf("response %d: %v", i+1, err)
			}
			want := fmt.Sprintf("app saw %s /%d", m, i+1)
			if m == "HEAD" {
				want = ""
			}
			if resp.StatusCode != 200 || body != want {
				t.Errorf("response %d: %d %q, want 200 %q", i+1, resp.StatusCode, body, want)
			}
		}
		if n := p.BytesServed() - before; n != 4 {
			t.Errorf("the byte-level engine decided on %d requests, want 4", n)
		}
		if n := len(app.take()); n != 4 {
			t.Errorf("the app saw %d requests, want 4", n)
		}
	})

	t.Run("chunked body handed off", func(t *testing.T) {
		before := p.BytesServed()
		c, br := dialOut(t, out)
		io.WriteString(c, crlf("POST /c HTTP/1.1\nHost: api\nTransfer-Encoding: chunked\n\n3\nabc\n2\nde\n0\n\nGET /after HTTP/1.1\nHost: api\n\n"))
		for _, want := range []string{"app saw POST /c", "app saw GET /after"} {
			resp, body, err := readResp(t, br, "POST")
			if err != nil || resp.StatusCode != 200 || body != want {
				t.Fatalf("%v %q %v; want 200 %q", resp, body, err, want)
			}
		}
		if n := p.BytesServed() - before; n != 0 {
			t.Errorf("the byte-level engine decided on %d requests; want the connection handed to net/http", n)
		}
		if seen := app.take(); len(seen) != 2 || seen[0].ContentLength != -1 && seen[0].ContentLength != 5 {
			t.Errorf("the app saw %d requests, want 2 (the first with its 5 bytes)", len(seen))
		}
	})

	t.Run("expect 100-continue", func(t *testing.T) {
		c, br := dialOut(t, out)
		io.WriteString(c, crlf("PUT /e HTTP/1.1\nHost: api\nExpect: 100-continue\nContent-Length: 4\n\n"))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusContinue {
			t.Fatalf("%v %v; want 100 Continue before the body is sent", resp, err)
		}
		io.WriteString(c, "body")
		resp, body, err := readResp(t, br, "PUT")
		if err != nil || resp.StatusCode != 200 || body != "app saw PUT /e" {
			t.Fatalf("%v %q %v; want the app's 200", resp, body, err)
		}
		if seen := app.take(); len(seen) != 1 || seen[0].ContentLength != 4 {
			t.Errorf("the app saw %v, want one request with 4 body bytes", seen)
		}
	})

	t.Run("connection close", func(t *testing.T) {
		c, br := dialOut(t, out)
		io.WriteString(c, crlf("GET /bye HTTP/1.1\nHost: api\nConnection: close\n\n"))
		resp, body, err := readResp(t, br, "GET")
		if err != nil || resp.StatusCode != 200 || !resp.Close || body != "app saw GET /bye" {
			t.Fatalf("%v %q %v; want the app's 200 with Connection: close", resp, body, err)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the response: %v, want the connection closed (EOF)", err)
		}
		app.take()
	})

	t.Run("peer dies mid-response", func(t *testing.T) {
		peer, _ := fakePeer(t, ca, func(n int64, r *http.Request, c net.Conn) bool {
			if r.URL.Path == "/die" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
				return false
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		_, out := bytesWeb(t, ca, nil, peer)
		c, br := dialOut(t, out)
		io.WriteString(c, crlf("GET /die HTTP/1.1\nHost: api\n\n"))
		resp, body, err := readResp(t, br, "GET")
		if err == nil {
			t.Fatalf("%v %q: want the response cut short (the peer died)", resp, body)
		}
		if resp == nil || resp.StatusCode != 200 || body != "only ten b" {
			t.Errorf("%v %q: want the 200 and the 10 bytes the peer sent", resp, body)
		}
		c2, br2 := dialOut(t, out)
		io.WriteString(c2, crlf("GET /next HTTP/1.1\nHost: api\n\n"))
		if resp, body, err := readResp(t, br2, "GET"); err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Errorf("the next request: %v %q %v; want 200 ok on a new connection", resp, body, err)
		}
	})
}

// TestOutboundBytesRetriesOnlyWhatPolicyAllows: three peers that read a
// request and close without a response. A POST is not sent again
// without a retry policy (502, the peer read it once), nor is a GET on a
// fresh connection; with a policy that retries on "reset", it is sent
// again, up to its attempts.
func TestOutboundBytesRetriesOnlyWhatPolicyAllows(t *testing.T) {
	ca := newCA(t)
	resetAll := &meshapi.Route{Name: "reset", Retry: &meshapi.RetryPolicy{Attempts: 3, RetryOn: []string{"reset"}, BudgetPercent: 100, BudgetMinPerSecond: 1000}}
	for _, tc := range []struct {
		name    string
		routes  []*meshapi.Route
		head    string
		code    int
		reached int64
	}{
		{"POST without a policy", nil, "POST /p HTTP/1.1\nHost: api\nContent-Length: 2\n\nhi", http.StatusBadGateway, 1},
		{"GET without a policy", nil, "GET /g HTTP/1.1\nHost: api\n\n", http.StatusBadGateway, 1},
		{"POST with retry on reset", []*meshapi.Route{resetAll}, "POST /p HTTP/1.1\nHost: api\nContent-Length: 2\n\nhi", http.StatusBadGateway, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var peers []net.Addr
			var counts []*atomic.Int64
			for range 3 {
				peer, n := fakePeer(t, ca, func(int64, *http.Request, net.Conn) bool { return false })
				peers, counts = append(peers, peer), append(counts, n)
			}
			reached := func() (n int64) {
				for _, c := range counts {
					n += c.Load()
				}
				return n
			}
			p, out := bytesWeb(t, ca, tc.routes, peers...)
			c, br := dialOut(t, out)
			io.WriteString(c, crlf(tc.head))
			resp, body, err := readResp(t, br, "POST")
			if err != nil || resp.StatusCode != tc.code {
				t.Fatalf("%v %q %v; want %d", resp, body, err, tc.code)
			}
			if got := reached(); got != tc.reached {
				t.Errorf("the peer read the request %d times, want %d", got, tc.reached)
			}
			if p.BytesServed() != 1 {
				t.Errorf("the byte-level engine decided on %d requests, want 1", p.BytesServed())
			}
			// The connection stays open after the proxy's answer.
			io.WriteString(c, crlf("GET /again HTTP/1.1\nHost: api\n\n"))
			if _, _, err := readResp(t, br, "GET"); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("a second request on the connection: %v", err)
			}
		})
	}
}
