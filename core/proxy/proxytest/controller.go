package proxytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/spiffe"
)

// Wait bounds every wait of the Controller's helpers.
const Wait = 10 * time.Second

// ControllerOptions shape a fake controller.
type ControllerOptions struct {
	// Namespace and Service name the identity every certificate it issues
	// carries. Default: default/web.
	Namespace, Service string
	// Token is the join token it accepts, once. Default: "wj1.test-token".
	Token string
	// TokenUsed makes it refuse the token from the start, as after a
	// sidecar restart.
	TokenUsed bool
	// JoinLeaf shapes the certificate Join issues (Renew issues the
	// default one).
	JoinLeaf LeafOptions
	// CredentialAdapter and Credential, when set, make Join accept (any
	// number of times) that scheduler credential for that adapter instead
	// of the join token.
	CredentialAdapter, Credential string
}

// Controller is a fake Weft controller for tests of the sidecar: it
// serves Join, Renew and StreamConfig over TLS on 127.0.0.1 with a server
// certificate from CA (SPIFFE ID .../ns/weft-system/svc/weft-controller,
// SANs 127.0.0.1 and localhost), and lets the test drive the config
// stream and see everything the sidecar sends.
type Controller struct {
	meshapi.UnimplementedMeshServer
	CA    *CA
	Addr  string
	Token string
	// Requests receives every ConfigRequest a sidecar sends.
	Requests chan *meshapi.ConfigRequest
	// Renewed receives the client certificate of every Renew call.
	Renewed chan *x509.Certificate
	// Accepts receives one value per TCP connection (dropped when full).
	Accepts chan struct{}

	o       ControllerOptions
	used    atomic.Bool
	joins   atomic.Int32
	updates chan *meshapi.ConfigUpdate
	kick    chan struct{}
	srv     *grpc.Server
}

// StartController starts a fake controller that stops at the end of the
// test.
func StartController(t testing.TB, ca *CA, o ControllerOptions) *Controller {
	t.Helper()
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Service == "" {
		o.Service = "web"
	}
	if o.Token == "" {
		o.Token = "wj1.test-token"
	}
	c := &Controller{
		CA:       ca,
		Token:    o.Token,
		Requests: make(chan *meshapi.ConfigRequest, 64),
		Renewed:  make(chan *x509.Certificate, 16),
		Accepts:  make(chan struct{}, 64),
		o:        o,
		updates:  make(chan *meshapi.ConfigUpdate),
		kick:     make(chan struct{}),
	}
	c.used.Store(o.TokenUsed)
	cert, err := ca.Leaf("weft-system", "weft-controller", LeafOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven, // Join comes without one
		ClientCAs:    ca.Pool,
	})))
	meshapi.RegisterMeshServer(srv, c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(&notifyListener{Listener: ln, accepts: c.Accepts})
	t.Cleanup(srv.Stop)
	c.srv = srv
	c.Addr = ln.Addr().String()
	return c
}

// Stop ends the controller at once, as if its process died: every
// connection is closed and its address refuses new ones.
func (c *Controller) Stop() { c.srv.Stop() }

// Joins is how many Join calls arrived.
func (c *Controller) Joins() int { return int(c.joins.Load()) }

// NextRequest returns the next ConfigRequest, failing the test after Wait.
func (c *Controller) NextRequest(t testing.TB) *meshapi.ConfigRequest {
	t.Helper()
	select {
	case r := <-c.Requests:
		return r
	case <-time.After(Wait):
		t.Fatal("no ConfigRequest from the sidecar")
		return nil
	}
}

// Send sends u on the open config stream, failing the test if none opens
// within Wait.
func (c *Controller) Send(t testing.TB, u *meshapi.ConfigUpdate) {
	t.Helper()
	select {
	case c.updates <- u:
	case <-time.After(Wait):
		t.Fatal("no config stream to send on")
	}
}

// Kick ends the open config stream with UNAVAILABLE.
func (c *Controller) Kick(t testing.TB) {
	t.Helper()
	select {
	case c.kick <- struct{}{}:
	case <-time.After(Wait):
		t.Fatal("no config stream to break")
	}
}

func (c *Controller) issue(csr []byte, o LeafOptions) (*meshapi.Credentials, error) {
	id := spiffe.Identity{TrustDomain: c.CA.TrustDomain, Namespace: c.o.Namespace, Service: c.o.Service}
	chain, err := c.CA.SignCSR(csr, id, o)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &meshapi.Credentials{CertChainPem: chain, RootsPem: c.CA.RootPEM, SpiffeId: id.String()}, nil
}

// Join implements meshapi.MeshServer.
func (c *Controller) Join(_ context.Context, r *meshapi.JoinRequest) (*meshapi.Credentials, error) {
	c.joins.Add(1)
	if c.o.CredentialAdapter != "" {
		if r.CredentialAdapter != c.o.CredentialAdapter || r.Credential != c.o.Credential {
			return nil, status.Errorf(codes.PermissionDenied, "credential for adapter %q refused", r.CredentialAdapter)
		}
		return c.issue(r.CsrDer, c.o.JoinLeaf)
	}
	if r.JoinToken != c.Token || c.used.Swap(true) {
		return nil, status.Error(codes.Unauthenticated, "the join token was already used or is unknown")
	}
	return c.issue(r.CsrDer, c.o.JoinLeaf)
}

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

// Renew implements meshapi.MeshServer.
func (c *Controller) Renew(ctx context.Context, r *meshapi.RenewRequest) (*meshapi.Credentials, error) {
	cert, err := peerCert(ctx)
	if err != nil {
		return nil, err
	}
	select {
	case c.Renewed <- cert:
	default:
	}
	return c.issue(r.CsrDer, LeafOptions{})
}

// StreamConfig implements meshapi.MeshServer.
func (c *Controller) StreamConfig(s meshapi.Mesh_StreamConfigServer) error {
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
			c.Requests <- r
		}
	}()
	for {
		select {
		case u := <-c.updates:
			if err := s.Send(u); err != nil {
				return err
			}
		case <-c.kick:
			return status.Error(codes.Unavailable, "stream ended by the test")
		case err := <-errc:
			return err
		}
	}
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
