package meshserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

type harness struct {
	ca   *ca.CA
	reg  *registry.Registry
	srv  *Server
	addr string
}

func start(t *testing.T) *harness {
	t.Helper()
	c, err := ca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, c, ca.NewJoinVerifier(c.JoinSecret()))
}

// serve runs a Server with CA c and join verifier jv on a loopback
// listener, stopped at the end of the test.
func serve(t *testing.T, c *ca.CA, jv *ca.JoinVerifier) *harness {
	t.Helper()
	h := &harness{ca: c, reg: registry.New()}
	h.srv = New(Options{CA: c, Join: jv, Workloads: workloadsOf(h.reg, "weft.local")})
	cert, err := c.ServerCertificate(spiffe.Identity{TrustDomain: "weft.local", Namespace: ControllerNamespace, Service: ControllerService}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(h.srv.TLSConfig(cert))))
	h.srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	h.addr = lis.Addr().String()
	return h
}

func (h *harness) addInstance(id, svc string) {
	ins := []model.Instance{}
	for _, e := range h.reg.Entries() {
		ins = append(ins, e.Instance)
	}
	ins = append(ins, model.Instance{ID: id, Service: svc, Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}})
	h.reg.Update(model.Snapshot{Adapter: "local", Instances: ins})
}

func (h *harness) token(t *testing.T, id, svc string) string {
	t.Helper()
	tok, err := ca.MintJoinToken(ca.DeriveJoinKey(h.ca.JoinSecret(), "local"), ca.JoinClaims{Adapter: "local", Instance: id, Service: svc}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial connects with server verification and, if cert is non-nil, a client certificate.
func (h *harness) dial(t *testing.T, cert *tls.Certificate) meshapi.MeshClient {
	t.Helper()
	return h.dialWith(t, h.ca.Pool(), cert)
}

func join(t *testing.T, c meshapi.MeshClient, id, token string) (*tls.Certificate, error) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	creds, err := c.Join(ctx, &meshapi.JoinRequest{InstanceId: id, JoinToken: token, CsrDer: csr})
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(creds.CertChainPem)
	return &tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: key}, nil
}

func TestJoin(t *testing.T) {
	h := start(t)
	c := h.dial(t, nil)
	tok := h.token(t, "api-0", "api")

	if _, err := join(t, c, "api-0", tok); status.Code(err) != codes.Unavailable {
		t.Fatalf("join before the instance is known: %v, want Unavailable", err)
	}
	h.addInstance("api-0", "api")
	if _, err := join(t, c, "api-1", tok); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("join for another instance: %v, want PermissionDenied", err)
	}
	cert, err := join(t, c, "api-0", tok)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	if id, _ := spiffe.FromCert(leaf); id.String() != "spiffe://weft.local/ns/default/svc/api" {
		t.Errorf("issued identity = %s", id)
	}
	if _, err := join(t, c, "api-0", tok); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("reused token: %v, want Unauthenticated", err)
	}
	h.addInstance("store-0", "store")
	if _, err := join(t, c, "store-0", h.token(t, "store-0", "api")); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("token claiming the wrong service: %v, want PermissionDenied", err)
	}
}

func cfg(id, svc string, port uint32) *meshapi.ProxyConfig {
	return &meshapi.ProxyConfig{InstanceId: id, Service: svc, Namespace: "default", Inbound: &meshapi.Inbound{Port: port}}
}

func TestStreamConfig(t *testing.T) {
	h := start(t)
	h.addInstance("api-0", "api")
	h.addInstance("store-0", "store")
	cert, err := join(t, h.dial(t, nil), "api-0", h.token(t, "api-0", "api"))
	if err != nil {
		t.Fatal(err)
	}
	c := h.dial(t, cert)
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1), "store-0": cfg("store-0", "store", 1)})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0"})
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.Config.Inbound.Port != 1 {
		t.Errorf("first config port = %d, want 1", first.Config.Inbound.Port)
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0", AppliedVersion: first.Version})

	// An unchanged update sends nothing; a changed one sends a newer version.
	if n := h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1), "store-0": cfg("store-0", "store", 2)}); n != 1 {
		t.Errorf("Update changed %d configs, want 1", n)
	}
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 2), "store-0": cfg("store-0", "store", 2)})
	second, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if second.Config.Inbound.Port != 2 || second.Version <= first.Version {
		t.Errorf("second update = port %d version %d, want port 2 and a version above %d", second.Config.Inbound.Port, second.Version, first.Version)
	}

	// The api's certificate may not read the store's configuration.
	st2, err := c.StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st2.Send(&meshapi.ConfigRequest{InstanceId: "store-0"})
	if _, err := st2.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reading another service's config: %v, want PermissionDenied", err)
	}

	// Without a client certificate the stream is refused.
	st3, err := h.dial(t, nil).StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st3.Send(&meshapi.ConfigRequest{InstanceId: "api-0"})
	if _, err := st3.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without certificate: %v, want Unauthenticated", err)
	}
}

func TestJoinWithCredential(t *testing.T) {
	h := start(t)
	h.srv.o.VerifyCredential = func(_ context.Context, adapter, instance, cred string) (CredentialClaims, error) {
		switch {
		case adapter != "local":
			return CredentialClaims{}, errors.New("no such adapter")
		case cred == "restarting":
			return CredentialClaims{}, fmt.Errorf("adapter restarting: %w", ErrRetry)
		case strings.HasPrefix(cred, "jwt-for-"):
			svc, inst, _ := strings.Cut(strings.TrimPrefix(cred, "jwt-for-"), "/")
			return CredentialClaims{Instance: inst, Service: svc}, nil
		}
		return CredentialClaims{}, errors.New("signature does not verify")
	}
	h.addInstance("api-0", "api")
	h.addInstance("store-0", "store")
	c := h.dial(t, nil)
	joinCred := func(instance, cred string) error {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Join(ctx, &meshapi.JoinRequest{InstanceId: instance, CsrDer: csr, CredentialAdapter: "local", Credential: cred})
		return err
	}
	tests := []struct {
		name, instance, cred string
		want                 codes.Code
	}{
		{"proves the instance's own service", "api-0", "jwt-for-api/api-0", codes.OK},
		{"proves another service (job A asking for job B)", "store-0", "jwt-for-api/store-0", codes.PermissionDenied},
		{"for another instance", "store-0", "jwt-for-store/api-0", codes.PermissionDenied},
		{"forged", "api-0", "forged", codes.PermissionDenied},
		{"adapter restarting", "api-0", "restarting", codes.Unavailable},
		{"instance not in the snapshot yet", "api-9", "jwt-for-api/api-9", codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(joinCred(tc.instance, tc.cred)); got != tc.want {
				t.Errorf("code = %v, want %v", got, tc.want)
			}
		})
	}
	h.srv.o.VerifyCredential = nil
	if got := status.Code(joinCred("api-0", "jwt-for-api/api-0")); got != codes.FailedPrecondition {
		t.Errorf("a controller without credential checks: %v, want FailedPrecondition", got)
	}
}

// A sidecar's rejection shows in Status until it applies a later version;
// then it is gone (weft status showed an old REJECTED message for good).
func TestRejectionClearedByLaterAck(t *testing.T) {
	h := start(t)
	h.addInstance("api-0", "api")
	cert, err := join(t, h.dial(t, nil), "api-0", h.token(t, "api-0", "api"))
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.dial(t, cert).StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0"})
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	// waitStatus waits (bounded) until api-0's stream status satisfies ok.
	waitStatus := func(what string, ok func(StreamStatus) bool) StreamStatus {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			for _, s := range h.srv.Status() {
				if s.Instance == "api-0" && ok(s) {
					return s
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no status with %s within 5s: %+v", what, h.srv.Status())
			}
			time.Sleep(5 * time.Millisecond) // Status has no change signal
		}
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0", RejectedVersion: first.Version, ErrorDetail: "binding inbound listener: address in use"})
	got := waitStatus("the rejection", func(s StreamStatus) bool { return s.RejectedVersion == first.Version })
	if got.RejectError != "binding inbound listener: address in use" {
		t.Errorf("reject error %q", got.RejectError)
	}

	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 2)})
	second, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0", AppliedVersion: second.Version})
	got = waitStatus("the later version applied", func(s StreamStatus) bool { return s.AckedVersion == second.Version })
	if got.RejectedVersion != 0 || got.RejectError != "" {
		t.Errorf("after version %d was applied, status still shows rejected version %d: %q", second.Version, got.RejectedVersion, got.RejectError)
	}
}

// registryWorkloads answers Workloads from a real registry and a fixed
// trust domain, as the controller does from its registry and policy.
type registryWorkloads struct {
	reg         *registry.Registry
	trustDomain string
}

func workloadsOf(reg *registry.Registry, trustDomain string) Workloads {
	return registryWorkloads{reg: reg, trustDomain: trustDomain}
}

func (w registryWorkloads) TrustDomain() string { return w.trustDomain }

func (w registryWorkloads) Lookup(adapter, id string) (model.Instance, bool) {
	return w.reg.Lookup(adapter, id)
}

func (w registryWorkloads) Instance(id string) (string, model.Instance, bool) {
	e, ok := w.reg.Find(id)
	return e.Adapter, e.Instance, ok
}
