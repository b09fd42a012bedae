package meshserver

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/spiffe"
)

// Hostile tests of admission (docs/ha-threats.md): join, node and
// application tokens presented as an attacker holding one of them (a
// compromised sidecar, node proxy or application proxy) or a careless
// operator would, over the real gRPC API with TLS on loopback.

// attackMesh places instances for the attacks: two nodes, a service
// spelled in several ways, and a workload that calls itself the
// controller.
func attackMesh(h *harness) {
	inst := func(id, ns, svc, node string) model.Instance {
		return model.Instance{ID: id, Namespace: ns, Service: svc, Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}, Node: node}
	}
	h.reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{
		inst("web-0", "", "web", "node-a"),
		inst("web-1", "", "web", "node-a"),
		inst("web-b", "", "web", "node-b"),
		inst("db-0", "", "db", "node-a"),
		inst("pay-0", "pay", "web", "node-a"),
		inst("ctl-0", ControllerNamespace, ControllerService, "node-a"),
		inst("fake-0", "", "web", "node-a "), // a node name with a space
	}})
}

func mint(t *testing.T, key []byte, c ca.JoinClaims, ttl time.Duration) string {
	t.Helper()
	tok, err := ca.MintJoinToken(key, c, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestJoinAttack: every token is presented where it does not belong, and
// refused with a code and a reason; what it may do, it does once.
func TestJoinAttack(t *testing.T) {
	h := start(t)
	attackMesh(h)
	c := h.dial(t, nil)
	key := ca.DeriveJoinKey(h.ca.JoinSecret(), "local")
	nomadKey := ca.DeriveJoinKey(h.ca.JoinSecret(), "nomad")
	sidecar := func(inst, ns, svc string) string {
		return mint(t, key, ca.JoinClaims{Adapter: "local", Instance: inst, Namespace: ns, Service: svc}, time.Minute)
	}
	app := func(node, ns, svc string) string {
		return mint(t, key, ca.JoinClaims{Adapter: "local", Node: node, Namespace: ns, Service: svc}, time.Minute)
	}
	nodeA := mint(t, key, ca.JoinClaims{Adapter: "local", Node: "node-a"}, time.Minute)
	replayed := sidecar("web-1", "", "web")
	// A sidecar token with a node claim too: it stays a sidecar's token,
	// for its one instance (IsNodeToken needs no instance).
	hybrid := mint(t, key, ca.JoinClaims{Adapter: "local", Instance: "web-0", Service: "web", Node: "node-a"}, time.Minute)
	// A genuine token whose claims are changed keep the signature of the
	// old ones.
	tampered := func(tok string, from, to string) string {
		rest := strings.TrimPrefix(tok, "wj1.")
		p, sig, _ := strings.Cut(rest, ".")
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte(from), []byte(to), 1)
		return "wj1." + base64.RawURLEncoding.EncodeToString(b) + "." + sig
	}

	tests := []struct {
		name, token, instance string
		wantCode              codes.Code // OK: admitted
		wantErr               string
		wantID                string // the certificate's identity when admitted
	}{
		{name: "sidecar token, its instance", token: replayed, instance: "web-1", wantID: "ns/default/svc/web"},
		{name: "sidecar token replayed", token: replayed, instance: "web-1", wantCode: codes.Unauthenticated, wantErr: "already used"},
		{name: "sidecar token for another instance", token: sidecar("web-0", "", "web"), instance: "db-0", wantCode: codes.PermissionDenied, wantErr: `for instance "web-0", not "db-0"`},
		{name: "sidecar token naming another service", token: sidecar("db-0", "", "web"), instance: "db-0", wantCode: codes.PermissionDenied, wantErr: "runs default/db"},
		{name: "sidecar token, service in capitals", token: sidecar("web-0", "", "WEB"), instance: "web-0", wantCode: codes.PermissionDenied, wantErr: "runs default/web"},
		{name: "sidecar token, namespace in capitals", token: sidecar("web-0", "Default", "web"), instance: "web-0", wantCode: codes.PermissionDenied, wantErr: "runs default/web"},
		{name: "sidecar token, Cyrillic e in the service", token: sidecar("web-0", "", "w\u0435b"), instance: "web-0", wantCode: codes.PermissionDenied, wantErr: "runs default/web"},
		{name: "sidecar token, expired", token: mint(t, key, ca.JoinClaims{Adapter: "local", Instance: "web-0", Service: "web"}, -time.Second), instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "expired"},
		{name: "sidecar token as a node proxy's (a node claim beside its instance)", token: hybrid, instance: "db-0", wantCode: codes.PermissionDenied, wantErr: `for instance "web-0", not "db-0"`},
		{name: "sidecar token with the instance changed", token: tampered(sidecar("web-0", "", "web"), `"i":"web-0"`, `"i":"db-0"`), instance: "db-0", wantCode: codes.Unauthenticated, wantErr: "does not verify"},
		{name: "sidecar token with a node claim added", token: tampered(sidecar("web-0", "", "web"), `"i":"web-0"`, `"i":"","nd":"node-a"`), instance: "db-0", wantCode: codes.Unauthenticated, wantErr: "does not verify"},
		{name: "another adapter's token for local's instance", token: mint(t, nomadKey, ca.JoinClaims{Adapter: "nomad", Instance: "web-0", Service: "web"}, time.Minute), instance: "web-0", wantCode: codes.Unavailable, wantErr: "not in adapter nomad's snapshot"},
		{name: "adapter claim changed to another's", token: tampered(sidecar("web-0", "", "web"), `"a":"local"`, `"a":"nomad"`), instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "does not verify"},
		{name: "node token of node-a for node-b's instance", token: nodeA, instance: "web-b", wantCode: codes.PermissionDenied, wantErr: `placed it on node "node-b"`},
		{name: "node token, node claim changed to node-b", token: tampered(nodeA, `"nd":"node-a"`, `"nd":"node-b"`), instance: "web-b", wantCode: codes.Unauthenticated, wantErr: "does not verify"},
		{name: "node token, a node name with a trailing space", token: nodeA, instance: "fake-0", wantCode: codes.PermissionDenied, wantErr: `placed it on node "node-a "`},
		{name: "node token, expired", token: mint(t, key, ca.JoinClaims{Adapter: "local", Node: "node-a"}, -time.Second), instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "expired"},
		{name: "node token, its node's instance", token: nodeA, instance: "web-0", wantID: "ns/default/svc/web"},
		{name: "node token, the same instance again", token: nodeA, instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "already used for this instance"},
		{name: "application token, service in capitals", token: app("node-a", "", "Web"), instance: "web-0", wantCode: codes.PermissionDenied, wantErr: "instance of default/web"},
		{name: "application token, Cyrillic e", token: app("node-a", "", "w\u0435b"), instance: "web-0", wantCode: codes.PermissionDenied, wantErr: "instance of default/web"},
		{name: "application token, fullwidth letters", token: app("node-a", "", "\uff57\uff45\uff42"), instance: "web-0", wantCode: codes.PermissionDenied, wantErr: "instance of default/web"},
		{name: "application token, trailing space", token: app("node-a", "", "web "), instance: "web-0", wantCode: codes.PermissionDenied, wantErr: "instance of default/web"},
		{name: "application token, another namespace's service of that name", token: app("node-a", "", "web"), instance: "pay-0", wantCode: codes.PermissionDenied, wantErr: "instance of pay/web"},
		{name: "application token, namespace in capitals", token: app("node-a", "PAY", "web"), instance: "pay-0", wantCode: codes.PermissionDenied, wantErr: "instance of pay/web"},
		{name: "application token, expired", token: mint(t, key, ca.JoinClaims{Adapter: "local", Node: "node-a", Service: "web"}, -time.Second), instance: "web-1", wantCode: codes.Unauthenticated, wantErr: "expired"},
		{name: "application token, its application", token: app("node-a", "", "web"), instance: "web-1", wantID: "ns/default/svc/web"},
		{name: "the controller's identity, sidecar token", token: sidecar("ctl-0", ControllerNamespace, ControllerService), instance: "ctl-0", wantCode: codes.PermissionDenied, wantErr: "controllers' own identity"},
		{name: "the controller's identity, node token", token: nodeA, instance: "ctl-0", wantCode: codes.PermissionDenied, wantErr: "controllers' own identity"},
		{name: "no token", token: "", instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "not a Weft join token"},
		{name: "prefix only", token: "wj1.", instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "no signature"},
		{name: "1 MiB token", token: "wj1." + strings.Repeat("A", 1<<20) + ".x", instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "over the limit"},
		{name: "JSON nested 1,400 deep", token: "wj1." + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("[", 1400)+strings.Repeat("]", 1400))) + ".x", instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "decoding join token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := join(t, c, tt.instance, tt.token)
			if tt.wantCode == codes.OK {
				if err != nil {
					t.Fatalf("join: %v, want admitted", err)
				}
				leaf, err := x509.ParseCertificate(cert.Certificate[0])
				if err != nil {
					t.Fatal(err)
				}
				if id, err := spiffe.FromCert(leaf); err != nil || !strings.HasSuffix(id.String(), tt.wantID) {
					t.Fatalf("certificate identity %v (%v), want %s", id, err, tt.wantID)
				}
				return
			}
			if err == nil || status.Code(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("join: %v, want %v containing %q", err, tt.wantCode, tt.wantErr)
			}
		})
	}
}

// TestJoinAttackConcurrentAdmissions: twenty proxies present one token
// for one instance at the same moment; exactly one gets a certificate,
// for a sidecar's token and for a node token alike.
func TestJoinAttackConcurrentAdmissions(t *testing.T) {
	h := start(t)
	attackMesh(h)
	c := h.dial(t, nil)
	key := ca.DeriveJoinKey(h.ca.JoinSecret(), "local")
	for _, tc := range []struct{ name, token, instance string }{
		{"sidecar token", mint(t, key, ca.JoinClaims{Adapter: "local", Instance: "web-0", Service: "web"}, time.Minute), "web-0"},
		{"node token", mint(t, key, ca.JoinClaims{Adapter: "local", Node: "node-a"}, time.Minute), "db-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				admitted int
				refusals []string
			)
			for range 20 {
				wg.Go(func() {
					_, err := join(t, c, tc.instance, tc.token)
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						admitted++
					} else {
						refusals = append(refusals, status.Code(err).String())
					}
				})
			}
			wg.Wait()
			if admitted != 1 {
				t.Fatalf("%d of 20 concurrent joins admitted, want exactly 1 (refusals: %v)", admitted, refusals)
			}
		})
	}
}

// TestJoinAttackTokenFromBeforeRotation: a token minted before the root
// rotates still admits its instance (the join secret is not the root),
// and the certificate is the new root's. This is deliberate: an adapter
// that minted tokens a moment before `weft ca rotate` must not strand the
// instances it is starting.
func TestJoinAttackTokenFromBeforeRotation(t *testing.T) {
	h := start(t)
	attackMesh(h)
	c := h.dial(t, nil)
	tok := mint(t, ca.DeriveJoinKey(h.ca.JoinSecret(), "local"), ca.JoinClaims{Adapter: "local", Instance: "web-0", Service: "web"}, time.Minute)
	before := h.ca.ActiveRootID()
	if _, err := h.ca.Rotate(); err != nil {
		t.Fatal(err)
	}
	cert, err := join(t, c, "web-0", tok)
	if err != nil {
		t.Fatalf("a token minted before the rotation: %v, want admitted", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	var issuer string
	for rest := h.ca.RootsPEM(); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		root, err := x509.ParseCertificate(b.Bytes)
		if err == nil && bytes.Equal(root.SubjectKeyId, leaf.AuthorityKeyId) {
			issuer = ca.RootID(root)
		}
	}
	if issuer == "" || issuer == before || issuer != h.ca.ActiveRootID() {
		t.Fatalf("the leaf was signed by %q; want the new active root %q (not %q)", issuer, h.ca.ActiveRootID(), before)
	}
	// And spent: the token is single-use across the rotation too.
	if _, err := join(t, c, "web-0", tok); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the token again after the rotation: %v, want Unauthenticated", err)
	}
}
