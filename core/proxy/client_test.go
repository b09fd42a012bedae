package proxy_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

type clientRun struct {
	p      *proxy.Proxy
	log    *logBuf
	done   chan struct{} // closed when Run returns
	err    error         // what Run returned, once done is closed
	cancel context.CancelFunc
	once   sync.Once
}

// runClient runs a client for instance web-1 against the addresses given,
// until stop or the end of the test.
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
	r := &clientRun{p: p, log: lb, done: make(chan struct{}), cancel: cancel}
	go func() {
		r.err = c.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("sidecar log:\n%s", lb)
		}
	})
	return r
}

// stop ends Run and closes the proxy, as a sidecar exit would.
func (r *clientRun) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Error("Run did not return after its context ended")
		}
		r.p.Close()
	})
}

func webConfig() *meshapi.ProxyConfig {
	return clientConfig(meshapi.Protocol_PROTOCOL_TCP, apiID, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
}

func TestClientJoinsStreamsAndAcknowledges(t *testing.T) {
	ca := newCA(t)
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{})
	r := runClient(t, ca, f.Token, "", f.Addr)

	if req := f.NextRequest(t); req.InstanceId != "web-1" || req.AppliedVersion != 0 {
		t.Fatalf("first request %v, want instance web-1 and no version", req)
	}
	if c := r.p.Credentials(); c == nil || c.ID.String() != webID {
		t.Fatalf("credentials after join: %+v", c)
	}
	f.Send(t, &meshapi.ConfigUpdate{Version: 1, Config: webConfig()})
	if req := f.NextRequest(t); req.AppliedVersion != 1 || req.RejectedVersion != 0 {
		t.Fatalf("after version 1: %v, want an ACK of 1", req)
	}
	if err := r.p.Ready(); err != nil {
		t.Errorf("not ready after the first config: %v", err)
	}

	bad := webConfig()
	bad.Upstreams[0].SpiffeId = "not-a-spiffe-id"
	f.Send(t, &meshapi.ConfigUpdate{Version: 2, Config: bad})
	req := f.NextRequest(t)
	if req.RejectedVersion != 2 || req.AppliedVersion != 1 || !strings.Contains(req.ErrorDetail, "SPIFFE ID") {
		t.Fatalf("after a bad version 2: %v, want a NACK of 2 keeping 1 with the reason", req)
	}
	if v, _ := r.p.Config(); v != 1 {
		t.Errorf("applied version %d after the NACK, want 1", v)
	}
	listener := r.p.Addr(proxy.KeyUpstream("api"))

	// The stream breaks: the sidecar keeps its config and resubscribes.
	f.Kick(t)
	if req := f.NextRequest(t); req.AppliedVersion != 1 || req.InstanceId != "web-1" {
		t.Fatalf("resubscription %v, want applied_version 1", req)
	}
	if a := r.p.Addr(proxy.KeyUpstream("api")); a == nil || a.String() != listener.String() {
		t.Errorf("the upstream listener changed across the reconnect: %v, was %v", a, listener)
	}
	f.Send(t, &meshapi.ConfigUpdate{Version: 3, Config: webConfig()})
	if req := f.NextRequest(t); req.AppliedVersion != 3 {
		t.Errorf("after version 3: %v, want an ACK of 3", req)
	}
}

// TestClientCyclesThroughControllers: a sidecar given a dead controller
// and a live one joins through the live one, and says in its log that it
// could not reach the dead one. Each sidecar tries the replicas in an
// order of its own drawn at random (control.Replicas), so runs repeat
// until one drew the dead controller first (each does with probability
// 1/2; 32 runs all drawing the live one first: 2^-32).
func TestClientCyclesThroughControllers(t *testing.T) {
	ca := newCA(t)
	dead := deadAddr(t).String()
	for run := 1; run <= 32; run++ {
		f := proxytest.StartController(t, ca, proxytest.ControllerOptions{})
		r := runClient(t, ca, f.Token, "", dead, f.Addr)
		if req := f.NextRequest(t); req.InstanceId != "web-1" {
			t.Fatalf("run %d: request %v", run, req)
		}
		mentioned := strings.Contains(r.log.String(), dead)
		r.stop(t)
		if mentioned {
			t.Logf("run %d tried the dead controller first, logged it and joined through the live one", run)
			return
		}
	}
	t.Errorf("in 32 runs the log never mentions the unreachable controller %s", dead)
}

func TestClientRenewsAtHalfLife(t *testing.T) {
	ca := newCA(t)
	// Past half of its life already: renewal is due at once.
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{
		JoinLeaf: proxytest.LeafOptions{NotBefore: time.Now().Add(-40 * time.Minute), TTL: time.Hour},
	})
	r := runClient(t, ca, f.Token, "", f.Addr)

	var first *x509.Certificate // the certificate Renew was called with
	select {
	case first = <-f.Renewed:
	case <-time.After(wait):
		t.Fatal("the sidecar did not renew")
	}
	if time.Since(first.NotBefore) < 30*time.Minute {
		t.Errorf("Renew was called with a certificate from %v, not the joined one", first.NotBefore)
	}
	// The swap follows the answer.
	for {
		changed := r.p.CredentialsChanged()
		if !r.p.Credentials().Cert.Leaf.Equal(first) {
			break
		}
		select {
		case <-changed:
		case <-time.After(wait):
			t.Fatal("the renewed certificate was not swapped in")
		}
	}
	if got := r.p.Credentials().NotAfter(); !got.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the old %v", got, first.NotAfter)
	}
	select {
	case <-f.Renewed:
		t.Error("renewed twice: the new certificate's renewal is not due for half an hour")
	default:
	}
	// The config stream opens as well.
	if req := f.NextRequest(t); req.InstanceId != "web-1" {
		t.Errorf("subscription %v", req)
	}
}

func TestClientReportsUsedJoinToken(t *testing.T) {
	ca := newCA(t)
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{TokenUsed: true})
	r := runClient(t, ca, f.Token, "", f.Addr)
	select {
	case <-r.done:
		if r.err == nil || !strings.Contains(r.err.Error(), "join token") || !strings.Contains(r.err.Error(), "fresh WEFT_JOIN_TOKEN") {
			t.Errorf("Run: %v, want an error saying the join token was refused and what to do", r.err)
		}
	case <-time.After(wait):
		t.Fatal("Run kept going with a refused join token")
	}
	if n := f.Joins(); n != 1 {
		t.Errorf("Join called %d times, want 1 (a refusal is final)", n)
	}
}

func TestClientRestartReusesSavedState(t *testing.T) {
	ca := newCA(t)
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{})
	dir := t.TempDir()
	first := runClient(t, ca, f.Token, dir, f.Addr)
	f.NextRequest(t)
	f.Send(t, &meshapi.ConfigUpdate{Version: 4, Config: webConfig()})
	if r := f.NextRequest(t); r.AppliedVersion != 4 {
		t.Fatalf("after version 4: %v", r)
	}
	id := first.p.Credentials().Cert.Leaf
	first.stop(t)

	// A restart with the same (now used) token and the same directory
	// serves at once with the saved certificate and config.
	second := runClient(t, ca, f.Token, dir, f.Addr)
	if r := f.NextRequest(t); r.AppliedVersion != 4 {
		t.Errorf("resubscribed with version %d, want the saved 4", r.AppliedVersion)
	}
	if err := second.p.Ready(); err != nil {
		t.Errorf("not ready from the saved state: %v", err)
	}
	if !second.p.Credentials().Cert.Leaf.Equal(id) {
		t.Error("the restarted sidecar did not reuse the saved certificate")
	}
	if n := f.Joins(); n != 1 {
		t.Errorf("Join called %d times, want 1", n)
	}
}

func TestClientRefusesUntrustedController(t *testing.T) {
	ca := newCA(t)
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{})
	other := newCA(t) // the sidecar trusts only this one
	lb := &logBuf{}
	p := proxy.New(proxy.Options{Log: lb})
	defer p.Close()
	c, err := proxy.NewClient(p, proxy.ClientOptions{InstanceID: "web-1", Controllers: []string{f.Addr}, TrustBundle: other.Pool, JoinToken: f.Token, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Two connections mean the first attempt failed and was retried.
	for range 2 {
		select {
		case <-f.Accepts:
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
	if n := f.Joins(); n != 0 {
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

// TestClientTakesTrustBundleAndRenewsForNewRoot: a config's trust bundle
// is trusted before the config is acknowledged; a sidecar whose leaf is
// from the active root does not renew, one whose leaf is from another root
// renews at once (not at half-life).
func TestClientTakesTrustBundleAndRenewsForNewRoot(t *testing.T) {
	oldCA, newCA_ := newCA(t), newCA(t)
	f := proxytest.StartController(t, oldCA, proxytest.ControllerOptions{})
	r := runClient(t, oldCA, f.Token, "", f.Addr)
	if req := f.NextRequest(t); req.InstanceId != "web-1" {
		t.Fatalf("subscription %v", req)
	}
	bundle := append(append([]byte{}, oldCA.RootPEM...), newCA_.RootPEM...)
	newLeaf, err := newCA_.Leaf("default", "api", proxytest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Both roots, the old one still active: trusted, no renewal.
	cfg := webConfig()
	cfg.Trust = &meshapi.TrustBundle{RootsPem: bundle, ActiveRootId: ca.RootID(oldCA.Cert)}
	f.Send(t, &meshapi.ConfigUpdate{Version: 1, Config: cfg})
	if req := f.NextRequest(t); req.AppliedVersion != 1 {
		t.Fatalf("after version 1: %v, want an ACK", req)
	}
	if _, err := newLeaf.Leaf.Verify(x509.VerifyOptions{Roots: r.p.Credentials().Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("after the bundle with the new root, a leaf of the new root does not verify: %v", err)
	}
	if strings.Contains(r.log.String(), "renewing now") {
		t.Errorf("renewing with a leaf of the active root:\n%s", r.log)
	}

	// The new root active: renewal at once.
	cfg = webConfig()
	cfg.Trust = &meshapi.TrustBundle{RootsPem: bundle, ActiveRootId: ca.RootID(newCA_.Cert)}
	f.Send(t, &meshapi.ConfigUpdate{Version: 2, Config: cfg})
	if req := f.NextRequest(t); req.AppliedVersion != 2 {
		t.Fatalf("after version 2: %v, want an ACK", req)
	}
	select {
	case <-f.Renewed:
	case <-time.After(wait):
		t.Fatalf("the sidecar did not renew when another root became active:\n%s", r.log)
	}

	// A bundle with no root in it is ignored, not fatal.
	cfg = webConfig()
	cfg.Trust = &meshapi.TrustBundle{RootsPem: []byte("garbage"), ActiveRootId: "x"}
	f.Send(t, &meshapi.ConfigUpdate{Version: 3, Config: cfg})
	if req := f.NextRequest(t); req.AppliedVersion != 3 {
		t.Fatalf("after version 3: %v, want an ACK", req)
	}
	if !strings.Contains(r.log.String(), "ignoring the trust bundle") {
		t.Errorf("a bad bundle was not reported:\n%s", r.log)
	}
}
