package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
	"github.com/weftmesh/weft/core/spiffe"
)

// fakeController implements the sidecar-facing API with a test CA. It
// issues certificates for service "web" only, and reports everything a
// sidecar sends on its channels.
type fakeController struct {
	meshapi.UnimplementedMeshServer
	ca       *proxytest.CA
	token    string
	used     atomic.Bool
	joinOpts proxytest.LeafOptions // for the certificate Join issues
	joins    atomic.Int32
	renewed  chan *x509.Certificate // the client certificate each Renew came with
	requests chan *meshapi.ConfigRequest
	updates  chan *meshapi.ConfigUpdate // sent on the open stream
	kick     chan struct{}              // a send ends the open stream
	addr     string
	accepts  chan struct{} // one per TCP connection accepted
}

func newFakeController(t *testing.T, ca *proxytest.CA) *fakeController {
	t.Helper()
	f := &fakeController{
		ca:       ca,
		token:    "wj1.test-token",
		renewed:  make(chan *x509.Certificate, 16),
		requests: make(chan *meshapi.ConfigRequest, 64),
		updates:  make(chan *meshapi.ConfigUpdate),
		kick:     make(chan struct{}),
		accepts:  make(chan struct{}, 64),
	}
	cert, err := ca.Leaf("weft-system", "weft-controller", proxytest.LeafOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.Pool,
	})))
	meshapi.RegisterMeshServer(srv, f)
	ln := &notifyListener{Listener: listen(t), accepts: f.accepts}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	f.addr = ln.Addr().String()
	return f
}

// notifyListener reports every connection it accepts, without blocking.
type notifyListener struct {
	net.Listener
	accepts chan struct{}
}

func (l *notifyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.accepts <- struct{}{}:
		default:
		}
	}
	return c, err
}

func (f *fakeController) issue(csr []byte, o proxytest.LeafOptions) (*meshapi.Credentials, error) {
	id := spiffe.Identity{TrustDomain: td, Namespace: "default", Service: "web"}
	chain, err := f.ca.SignCSR(csr, id, o)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &meshapi.Credentials{CertChainPem: chain, RootsPem: f.ca.RootPEM, SpiffeId: id.String()}, nil
}

func (f *fakeController) Join(_ context.Context, r *meshapi.JoinRequest) (*meshapi.Credentials, error) {
	f.joins.Add(1)
	if r.JoinToken != f.token || f.used.Swap(true) {
		return nil, status.Error(codes.PermissionDenied, "join token already used or unknown")
	}
	return f.issue(r.CsrDer, f.joinOpts)
}

// peerCert returns the verified client certificate of a call.
func peerCert(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	return ti.State.VerifiedChains[0][0], nil
}

func (f *fakeController) Renew(ctx context.Context, r *meshapi.RenewRequest) (*meshapi.Credentials, error) {
	c, err := peerCert(ctx)
	if err != nil {
		return nil, err
	}
	f.renewed <- c
	return f.issue(r.CsrDer, proxytest.LeafOptions{})
}

func (f *fakeController) StreamConfig(s meshapi.Mesh_StreamConfigServer) error {
	if _, err := peerCert(s.Context()); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				errc <- err
				return
			}
			f.requests <- r
		}
	}()
	for {
		select {
		case u := <-f.updates:
			if err := s.Send(u); err != nil {
				return err
			}
		case <-f.kick:
			return status.Error(codes.Unavailable, "kicked by the test")
		case err := <-errc:
			return err
		}
	}
}

func (f *fakeController) nextRequest(t *testing.T) *meshapi.ConfigRequest {
	t.Helper()
	select {
	case r := <-f.requests:
		return r
	case <-time.After(wait):
		t.Fatal("no ConfigRequest from the sidecar")
		return nil
	}
}

func (f *fakeController) send(t *testing.T, u *meshapi.ConfigUpdate) {
	t.Helper()
	select {
	case f.updates <- u:
	case <-time.After(wait):
		t.Fatal("no config stream to send on")
	}
}

type clientRun struct {
	p    *proxy.Proxy
	log  *logBuf
	done chan error
}

// runClient runs a client for instance web-1 against the addresses given,
// until the end of the test.
func runClient(t *testing.T, ca *proxytest.CA, token, dataDir string, addrs ...string) *clientRun {
	t.Helper()
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb, DrainTimeout: time.Second})
	c, err := proxy.NewClient(p, proxy.ClientOptions{
		InstanceID:  "web-1",
		Controllers: addrs,
		TrustBundle: ca.Pool,
		JoinToken:   token,
		DataDir:     dataDir,
		MinBackoff:  5 * time.Millisecond,
		MaxBackoff:  50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &clientRun{p: p, log: lb, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Error("Run did not return after its context ended")
		}
		p.Close()
		if t.Failed() {
			t.Logf("sidecar log:\n%s", lb)
		}
	})
	return r
}

func webConfig() *meshapi.ProxyConfig {
	return clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
}

func TestClientJoinsStreamsAndAcknowledges(t *testing.T) {
	ca := newCA(t)
	f := newFakeController(t, ca)
	r := runClient(t, ca, f.token, "", f.addr)

	if req := f.nextRequest(t); req.InstanceId != "web-1" || req.AppliedVersion != 0 {
		t.Fatalf("first request %v, want instance web-1 and no version", req)
	}
	if c := r.p.Credentials(); c == nil || c.ID.String() != webID {
		t.Fatalf("credentials after join: %+v", c)
	}
	f.send(t, &meshapi.ConfigUpdate{Version: 1, Config: webConfig()})
	if req := f.nextRequest(t); req.AppliedVersion != 1 || req.RejectedVersion != 0 {
		t.Fatalf("after version 1: %v, want an ACK of 1", req)
	}
	if err := r.p.Ready(); err != nil {
		t.Errorf("not ready after the first config: %v", err)
	}

	bad := webConfig()
	bad.Upstreams[0].SpiffeId = "not-a-spiffe-id"
	f.send(t, &meshapi.ConfigUpdate{Version: 2, Config: bad})
	req := f.nextRequest(t)
	if req.RejectedVersion != 2 || req.AppliedVersion != 1 || !strings.Contains(req.ErrorDetail, "SPIFFE ID") {
		t.Fatalf("after a bad version 2: %v, want a NACK of 2 keeping 1 with the reason", req)
	}
	if v, _ := r.p.Config(); v != 1 {
		t.Errorf("applied version %d after the NACK, want 1", v)
	}
	listener := r.p.Addr(proxy.KeyUpstream("api"))

	// The stream breaks: the sidecar keeps its config and resubscribes.
	select {
	case f.kick <- struct{}{}:
	case <-time.After(wait):
		t.Fatal("no config stream to break")
	}
	if req := f.nextRequest(t); req.AppliedVersion != 1 || req.InstanceId != "web-1" {
		t.Fatalf("resubscription %v, want applied_version 1", req)
	}
	if a := r.p.Addr(proxy.KeyUpstream("api")); a == nil || a.String() != listener.String() {
		t.Errorf("the upstream listener changed across the reconnect: %v, was %v", a, listener)
	}
	f.send(t, &meshapi.ConfigUpdate{Version: 3, Config: webConfig()})
	if req := f.nextRequest(t); req.AppliedVersion != 3 {
		t.Errorf("after version 3: %v, want an ACK of 3", req)
	}
}

func TestClientCyclesThroughControllers(t *testing.T) {
	ca := newCA(t)
	f := newFakeController(t, ca)
	dead := deadAddr(t).String()
	r := runClient(t, ca, f.token, "", dead, f.addr)
	if req := f.nextRequest(t); req.InstanceId != "web-1" {
		t.Fatalf("request %v", req)
	}
	if !strings.Contains(r.log.String(), dead) {
		t.Errorf("the log does not mention the unreachable controller %s", dead)
	}
}

func TestClientRenewsAtHalfLife(t *testing.T) {
	ca := newCA(t)
	f := newFakeController(t, ca)
	// Past half of its life already: renewal is due at once.
	f.joinOpts = proxytest.LeafOptions{NotBefore: time.Now().Add(-40 * time.Minute), TTL: time.Hour}
	r := runClient(t, ca, f.token, "", f.addr)
	f.nextRequest(t)
	first := r.p.Credentials().Cert.Leaf

	var presented *x509.Certificate
	select {
	case presented = <-f.renewed:
	case <-time.After(wait):
		t.Fatal("the sidecar did not renew")
	}
	if !presented.Equal(first) {
		t.Error("Renew was not called with the current certificate")
	}
	// The swap follows the answer.
	for {
		changed := r.p.CredentialsChanged()
		if !r.p.Credentials().Cert.Leaf.Equal(first) {
			break
		}
		select {
		case <-changed:
		case <-f.renewed:
			t.Fatal("renewed twice: the new certificate is not in use")
		case <-time.After(wait):
			t.Fatal("the renewed certificate was not swapped in")
		}
	}
	if got := r.p.Credentials().NotAfter(); !got.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the old %v", got, first.NotAfter)
	}
}

func TestClientReportsUsedJoinToken(t *testing.T) {
	ca := newCA(t)
	f := newFakeController(t, ca)
	f.used.Store(true)
	r := runClient(t, ca, f.token, "", f.addr)
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "join token") || !strings.Contains(err.Error(), "fresh WEFT_JOIN_TOKEN") {
			t.Errorf("Run: %v, want an error saying the join token was refused and what to do", err)
		}
	case <-time.After(wait):
		t.Fatal("Run kept going with a refused join token")
	}
	if n := f.joins.Load(); n != 1 {
		t.Errorf("Join called %d times, want 1 (a refusal is final)", n)
	}
}

func TestClientReusesSavedCertificate(t *testing.T) {
	ca := newCA(t)
	f := newFakeController(t, ca)
	dir := t.TempDir()
	first := runClient(t, ca, f.token, dir, f.addr)
	f.nextRequest(t)
	id := first.p.Credentials().Cert.Leaf

	// A restart with the same (now used) token and the same directory.
	second := runClient(t, ca, f.token, dir, f.addr)
	f.nextRequest(t)
	if !second.p.Credentials().Cert.Leaf.Equal(id) {
		t.Error("the restarted sidecar did not reuse the saved certificate")
	}
	if n := f.joins.Load(); n != 1 {
		t.Errorf("Join called %d times, want 1", n)
	}
}

func TestClientRefusesUntrustedController(t *testing.T) {
	ca := newCA(t)
	f := newFakeController(t, ca)
	other := newCA(t) // the sidecar trusts only this one
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb})
	defer p.Close()
	c, err := proxy.NewClient(p, proxy.ClientOptions{InstanceID: "web-1", Controllers: []string{f.addr}, TrustBundle: other.Pool, JoinToken: f.token, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Two connections mean the first attempt failed and was retried.
	for range 2 {
		select {
		case <-f.accepts:
		case <-time.After(wait):
			t.Fatal("the sidecar did not try the controller twice")
		}
	}
	if !strings.Contains(lb.String(), "verifying the controller's certificate") {
		t.Errorf("no verification error logged:\n%s", lb)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if n := f.joins.Load(); n != 0 {
		t.Errorf("Join reached an untrusted controller %d times", n)
	}
}

func TestNewClientChecksOptions(t *testing.T) {
	pool := x509.NewCertPool()
	cases := []struct {
		name string
		o    proxy.ClientOptions
		want string
	}{
		{"no instance", proxy.ClientOptions{Controllers: []string{"127.0.0.1:1"}, TrustBundle: pool}, "--instance"},
		{"no controller", proxy.ClientOptions{InstanceID: "i"}, "--controller"},
		{"bad address", proxy.ClientOptions{InstanceID: "i", Controllers: []string{"nope"}, TrustBundle: pool}, "host:port"},
		{"no bundle", proxy.ClientOptions{InstanceID: "i", Controllers: []string{"127.0.0.1:1"}}, "--trust-bundle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proxy.NewClient(proxy.New(proxy.Options{}), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewClient: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
