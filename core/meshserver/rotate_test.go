package meshserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

// startServing is start with the server's own renewing certificate.
func startServing(t *testing.T) *harness {
	t.Helper()
	c, err := ca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{ca: c, reg: registry.New()}
	h.srv = New(Options{CA: c, Join: ca.NewJoinVerifier(c.JoinSecret()), Workloads: workloadsOf(h.reg, "weft.local")})
	tc, err := h.srv.ServingTLSConfig(spiffe.Identity{TrustDomain: "weft.local", Namespace: ControllerNamespace, Service: ControllerService}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	h.srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	h.addr = lis.Addr().String()
	return h
}

// dialWith connects trusting roots only, presenting cert if not nil.
func (h *harness) dialWith(t *testing.T, roots *x509.CertPool, cert *tls.Certificate) meshapi.MeshClient {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return meshapi.NewMeshClient(conn)
}

func certFrom(t *testing.T, creds *meshapi.Credentials, key *ecdsa.PrivateKey) *tls.Certificate {
	t.Helper()
	cert := &tls.Certificate{PrivateKey: key}
	for rest := creds.CertChainPem; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	return cert
}

func newCSR(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// TestRotateRoot: after RotateRoot every stream gets a new version with
// both roots and the new active root; a sidecar holding an old leaf renews
// over its old mTLS handshake and gets a leaf of the new root that a
// client trusting only the old root accepts, as does the server itself.
func TestRotateRoot(t *testing.T) {
	h := startServing(t)
	oldRoots := h.ca.Pool()
	oldID := h.ca.ActiveRootID()
	h.addInstance("api-0", "api")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	key, csr := newCSR(t)
	creds, err := h.dialWith(t, oldRoots, nil).Join(ctx, &meshapi.JoinRequest{InstanceId: "api-0", JoinToken: h.token(t, "api-0", "api"), CsrDer: csr})
	if err != nil {
		t.Fatal(err)
	}
	oldCert := certFrom(t, creds, key)
	c := h.dialWith(t, oldRoots, oldCert)
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)})
	st, err := c.StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0"})
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Config.GetTrust().GetActiveRootId(); got != oldID {
		t.Fatalf("the first config names active root %q, want %q", got, oldID)
	}

	rot, err := h.srv.RotateRoot()
	if err != nil {
		t.Fatal(err)
	}
	second, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	tr := second.Config.GetTrust()
	if second.Version <= first.Version || tr.GetActiveRootId() != rot.New.ID || string(tr.GetRootsPem()) != string(h.ca.RootsPEM()) {
		t.Fatalf("after the rotation got version %d (first %d), active root %q; want a newer version naming %s with both roots",
			second.Version, first.Version, tr.GetActiveRootId(), rot.New.ID)
	}
	if second.Config.Inbound.GetPort() != 1 {
		t.Errorf("the rotation changed the rest of the configuration: %v", second.Config)
	}
	// An unchanged compile after the rotation sends nothing new.
	if n := h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)}); n != 0 {
		t.Errorf("Update after the rotation changed %d configs, want 0", n)
	}

	key2, csr2 := newCSR(t)
	renewed, err := c.Renew(ctx, &meshapi.RenewRequest{InstanceId: "api-0", CsrDer: csr2})
	if err != nil {
		t.Fatalf("renewing with the old root's leaf: %v", err)
	}
	newCert := certFrom(t, renewed, key2)
	if got := hex.EncodeToString(newCert.Leaf.AuthorityKeyId); got != rot.New.ID {
		t.Errorf("the renewed leaf is from root %s, want %s", got, rot.New.ID)
	}
	if _, err := spiffe.VerifyPeer(newCert.Certificate, oldRoots, "weft.local", time.Now()); err != nil {
		t.Errorf("a peer trusting only the old root refuses the renewed leaf: %v", err)
	}
	// A new connection with the new leaf, from a client that trusts only
	// the old root: the server accepts the leaf, the client the server's
	// new certificate.
	c2 := h.dialWith(t, oldRoots, newCert)
	st2, err := c2.StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st2.Send(&meshapi.ConfigRequest{InstanceId: "api-0"})
	if _, err := st2.Recv(); err != nil {
		t.Fatalf("streaming with the new leaf: %v", err)
	}
	s := h.srv.Status()
	if len(s) == 0 || s[0].LeafRoot != rot.New.ID {
		t.Errorf("status = %+v, want leaf root %s", s, rot.New.ID)
	}
}

// TestRetireRootsReloadsAnotherReplicasRotation: a server whose CA
// directory another replica rotated sends the new bundle to its sidecars.
func TestRetireRootsReloadsAnotherReplicasRotation(t *testing.T) {
	dir := t.TempDir()
	mine, err := ca.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{CA: mine, Workloads: workloadsOf(registry.New(), "weft.local"), RootsReload: 10 * time.Millisecond})
	srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)})
	_, v1, _ := srv.Config("api-0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { srv.RetireRoots(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	rot, err := other.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		c, v, _ := srv.Config("api-0")
		if c.GetTrust().GetActiveRootId() == rot.New.ID {
			if v <= v1 {
				t.Errorf("the new bundle came with version %d, not above %d", v, v1)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatalf("the server did not take the other replica's rotation; active root %s", c.GetTrust().GetActiveRootId())
		case <-time.After(10 * time.Millisecond): // polling Config, which has no change signal for tests
		}
	}
}

// TestControllerChainOutlivesRetirement: after the old root retired, a
// sidecar that only has a bootstrap bundle with the old root still
// verifies the controller (and so can join), through the cross-signature
// the controller keeps in its chain.
func TestControllerChainOutlivesRetirement(t *testing.T) {
	h := startServing(t)
	oldRoots := h.ca.Pool()
	h.addInstance("api-0", "api")
	// A rotation whose old root retires at once.
	ttl := h.ca.LeafTTL
	h.ca.LeafTTL = -2 * time.Minute
	rot, err := h.srv.RotateRoot()
	h.ca.LeafTTL = ttl
	if err != nil {
		t.Fatal(err)
	}
	if gone, err := h.ca.Retire(); err != nil || len(gone) != 1 || gone[0].ID != rot.Old.ID {
		t.Fatalf("Retire() = %+v, %v; want the old root", gone, err)
	}
	h.srv.RootsChanged()
	if n := len(h.ca.Roots()); n != 1 {
		t.Fatalf("%d roots after retirement, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, csr := newCSR(t)
	creds, err := h.dialWith(t, oldRoots, nil).Join(ctx, &meshapi.JoinRequest{InstanceId: "api-0", JoinToken: h.token(t, "api-0", "api"), CsrDer: csr})
	if err != nil {
		t.Fatalf("joining with a bootstrap bundle from before the rotation: %v", err)
	}
	if string(creds.RootsPem) != string(h.ca.RootsPEM()) {
		t.Error("the join did not hand out the current roots")
	}
}
