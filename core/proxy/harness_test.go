package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
	"github.com/weftmesh/weft/core/spiffe"
)

const td = "weft.test"

var (
	webID = spiffe.ID(td, "default", "web")
	apiID = spiffe.ID(td, "default", "api")
)

// wait bounds every wait in these tests.
const wait = 10 * time.Second

// logBuf collects a proxy's log; it is printed when a test fails.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newCA(t testing.TB) *proxytest.CA {
	t.Helper()
	ca, err := proxytest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// newProxy starts a proxy holding a certificate for service svc from ca.
func newProxy(t testing.TB, ca *proxytest.CA, svc string) (*proxy.Proxy, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: 2 * time.Second})
	setCreds(t, p, ca, svc)
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log of proxy %s:\n%s", svc, lb)
		}
	})
	return p, lb
}

func setCreds(t testing.TB, p *proxy.Proxy, ca *proxytest.CA, svc string) {
	t.Helper()
	cert, err := ca.Leaf("default", svc, proxytest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := proxy.NewCredentials(cert, ca.RootPEM)
	if err != nil {
		t.Fatal(err)
	}
	p.SetCredentials(creds)
}

func allowWeb() *meshapi.Authz {
	return &meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "web", Action: meshapi.Action_ACTION_ALLOW}}}
}

// serverConfig is the config of an "api" instance whose app listens on app.
func serverConfig(app net.Addr, proto meshapi.Protocol, authz *meshapi.Authz) *meshapi.ProxyConfig {
	host, port := splitAddr(app)
	return &meshapi.ProxyConfig{
		InstanceId:  "api-1",
		Service:     "api",
		Namespace:   "default",
		SpiffeId:    apiID,
		TrustDomain: td,
		Inbound: &meshapi.Inbound{
			BindAddress: "127.0.0.1",
			AppAddress:  host,
			AppPort:     port,
			Protocol:    proto,
			Authz:       authz,
		},
	}
}

// clientConfig is the config of a "web" instance with one upstream "api"
// whose endpoints are the given sidecar inbound addresses.
func clientConfig(proto meshapi.Protocol, wantID string, eps ...net.Addr) *meshapi.ProxyConfig {
	up := &meshapi.Upstream{
		Name:        "api",
		Service:     "api",
		SpiffeId:    wantID,
		BindAddress: "127.0.0.1",
		Protocol:    proto,
	}
	for i, ep := range eps {
		host, port := splitAddr(ep)
		up.Endpoints = append(up.Endpoints, &meshapi.Endpoint{InstanceId: "api-" + strconv.Itoa(i+1), Address: host, Port: port})
	}
	return &meshapi.ProxyConfig{
		InstanceId:  "web-1",
		Service:     "web",
		Namespace:   "default",
		SpiffeId:    webID,
		TrustDomain: td,
		Upstreams:   []*meshapi.Upstream{up},
	}
}

func splitAddr(a net.Addr) (string, uint32) {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		panic(err)
	}
	n, _ := strconv.Atoi(port)
	return host, uint32(n)
}

func apply(t testing.TB, p *proxy.Proxy, v uint64, cfg *meshapi.ProxyConfig) {
	t.Helper()
	if err := p.Apply(v, cfg); err != nil {
		t.Fatalf("applying version %d: %v", v, err)
	}
}

// mesh is a "web" sidecar whose upstream "api" is an "api" sidecar in
// front of an app.
type mesh struct {
	ca             *proxytest.CA
	client, server *proxy.Proxy
	clientLog      *logBuf
	serverLog      *logBuf
	outbound       string // where the web app connects to reach api
}

func newMesh(t testing.TB, app net.Addr, proto meshapi.Protocol, authz *meshapi.Authz) *mesh {
	t.Helper()
	m := &mesh{ca: newCA(t)}
	m.server, m.serverLog = newProxy(t, m.ca, "api")
	m.client, m.clientLog = newProxy(t, m.ca, "web")
	apply(t, m.server, 1, serverConfig(app, proto, authz))
	apply(t, m.client, 1, clientConfig(proto, apiID, m.server.Addr(proxy.KeyInbound)))
	m.outbound = m.client.Addr(proxy.KeyUpstream("api")).String()
	return m
}

// listen opens a loopback listener closed at the end of the test.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// httpApp serves HTTP/1.1 and h2c and answers with what it saw.
func httpApp(t testing.TB, h2c bool) net.Addr {
	t.Helper()
	return serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Caller", r.Header.Get("X-Weft-Caller"))
		w.Header().Set("X-Seen-Xfcc", r.Header.Get("X-Forwarded-Client-Cert"))
		w.Header().Set("X-Seen-Proto", r.Proto)
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}), h2c)
}

// serveHTTP serves h on a loopback listener, HTTP/1.1 and, with h2c,
// also HTTP/2 without TLS, until the end of the test.
func serveHTTP(t testing.TB, h http.Handler, h2c bool) net.Addr {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: h}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr()
}

// echoApp echoes every line it reads, prefixed with tag.
func echoApp(t *testing.T, tag string) net.Addr {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, tag+line); err != nil {
				return
			}
		}
	})
}

// serveConns listens on loopback (closed at the end of the test) and hands
// every connection it accepts to handle on a goroutine of its own, closing
// the connection when handle returns. It returns the listener's address.
func serveConns(t testing.TB, handle func(c net.Conn)) net.Addr {
	t.Helper()
	ln := listen(t)
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
	return ln.Addr()
}

// grpcApp runs the gRPC health service; every unary call answers with a
// header x-seen-caller echoing the x-weft-caller metadata it received.
func grpcApp(t testing.TB) net.Addr {
	t.Helper()
	ln := listen(t)
	echo := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		grpc.SetHeader(ctx, metadata.Pairs("x-seen-caller", strings.Join(md.Get("x-weft-caller"), ",")))
		return h(ctx, req)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(echo))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr()
}

// httpClient never uses a proxy from the environment.
func httpClient(h2c bool) *http.Client {
	tr := &http.Transport{}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr, Timeout: wait}
}

func get(t *testing.T, c *http.Client, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of GET %s: %v", url, err)
	}
	return resp, string(b)
}

// dialLine connects to addr and returns a function that sends a line and
// reads the answer.
func dialLine(t *testing.T, addr string) (net.Conn, func(string) (string, error)) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	return c, func(line string) (string, error) {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			return "", err
		}
		s, err := r.ReadString('\n')
		return strings.TrimSuffix(s, "\n"), err
	}
}
