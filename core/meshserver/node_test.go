package meshserver

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/spiffe"
)

// placeNodes fills the registry with instances placed on two nodes, one
// with no node reported, and one of node-a reported by another adapter.
func placeNodes(h *harness) {
	inst := func(id, svc, node string) model.Instance {
		return model.Instance{ID: id, Service: svc, Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}, Node: node}
	}
	h.reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{
		inst("web-0", "web", "node-a"),
		inst("api-0", "api", "node-a"),
		inst("db-0", "db", "node-b"),
		inst("old-0", "old", ""),
	}})
	h.reg.Update(model.Snapshot{Adapter: "nomad", Instances: []model.Instance{inst("pay-0", "pay", "node-a")}})
}

// A compromised node proxy: it holds node-a's node token (what the local
// adapter gives the proxy of node-a) and asks for certificates. It gets
// those of the instances its scheduler placed on node-a, each once, and
// nothing else: not an instance of node-b, not one whose adapter reports
// no node, not one of node-a reported by another adapter, not with a token
// it forged for node-b. The sidecar path is unchanged beside it.
func TestNodeProxyGetsOnlyItsOwnNodesInstances(t *testing.T) {
	h := start(t)
	placeNodes(h)
	c := h.dial(t, nil)
	key := ca.DeriveJoinKey(h.ca.JoinSecret(), "local")
	nodeA, err := ca.MintNodeToken(key, "local", "node-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	forgedB, err := ca.MintNodeToken([]byte("a key that is not the adapter's"), "local", "node-b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, instance string
		wantCode              codes.Code
		wantErr               string
		wantService           string
	}{
		{name: "own node", token: nodeA, instance: "web-0", wantService: "web"},
		{name: "own node, another instance", token: nodeA, instance: "api-0", wantService: "api"},
		{name: "own node, again", token: nodeA, instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "already used for this instance"},
		{name: "other node", token: nodeA, instance: "db-0", wantCode: codes.PermissionDenied, wantErr: `placed it on node "node-b"`},
		{name: "no node reported", token: nodeA, instance: "old-0", wantCode: codes.PermissionDenied, wantErr: "reports no node"},
		{name: "same node name, other adapter", token: nodeA, instance: "pay-0", wantCode: codes.Unavailable, wantErr: "not in adapter local's snapshot"},
		{name: "unknown instance", token: nodeA, instance: "ghost-0", wantCode: codes.Unavailable},
		{name: "forged token for node-b", token: forgedB, instance: "db-0", wantCode: codes.Unauthenticated, wantErr: "does not verify"},
		{name: "sidecar join token, unchanged", token: h.token(t, "db-0", "db"), instance: "db-0", wantService: "db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := join(t, c, tt.instance, tt.token)
			if tt.wantService != "" {
				if err != nil {
					t.Fatalf("join: %v", err)
				}
				leaf, err := x509.ParseCertificate(cert.Certificate[0])
				if err != nil {
					t.Fatal(err)
				}
				id, err := spiffe.FromCert(leaf)
				if err != nil || id.Service != tt.wantService {
					t.Fatalf("certificate identity = %v (%v), want service %s", id, err, tt.wantService)
				}
				return
			}
			if status.Code(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("join: %v, want %v containing %q", err, tt.wantCode, tt.wantErr)
			}
		})
	}

	// With the certificate of web-0 (node-a), it cannot renew as db-0
	// (node-b) either: renewal keeps the identity and checks the service.
	web, err := join(t, c, "api-0", mustNodeToken(t, key, "node-a"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, csr := newCSR(t)
	_, err = h.dial(t, web).Renew(ctx, &meshapi.RenewRequest{InstanceId: "db-0", CsrDer: csr})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("renewing as db-0 with api-0's certificate: %v, want PermissionDenied", err)
	}
}

func mustNodeToken(t *testing.T, key []byte, node string) string {
	t.Helper()
	tok, err := ca.MintNodeToken(key, "local", node, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A compromised per-application proxy: admitted for application api on
// node-a (an application token), it gets the certificates of api's
// instances on node-a and nothing else: not web's on the same node, not
// api's on node-b, not api of another namespace. The token's scope is in
// its signed claims, so widening it means forging it.
func TestApplicationProxyGetsOnlyItsOwnApplication(t *testing.T) {
	h := start(t)
	inst := func(id, ns, svc, node string) model.Instance {
		return model.Instance{ID: id, Namespace: ns, Service: svc, Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}, Node: node}
	}
	h.reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{
		inst("api-0", "", "api", "node-a"),
		inst("api-1", "", "api", "node-a"),
		inst("api-2", "", "api", "node-b"),
		inst("web-0", "", "web", "node-a"),
		inst("api-x", "other", "api", "node-a"),
	}})
	c := h.dial(t, nil)
	key := ca.DeriveJoinKey(h.ca.JoinSecret(), "local")
	apiA, err := ca.MintApplicationToken(key, "local", "node-a", "", "api", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	forgedWeb, err := ca.MintApplicationToken([]byte("a key that is not the adapter's"), "local", "node-a", "", "web", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, instance string
		wantCode              codes.Code
		wantErr               string
	}{
		{name: "own application, own node", token: apiA, instance: "api-0"},
		{name: "own application, another instance", token: apiA, instance: "api-1"},
		{name: "another application on the node", token: apiA, instance: "web-0", wantCode: codes.PermissionDenied, wantErr: `application default/api on node "node-a" may not serve instance "web-0": it is an instance of default/web`},
		{name: "own application, other node", token: apiA, instance: "api-2", wantCode: codes.PermissionDenied, wantErr: `placed it on node "node-b"`},
		{name: "same service name, other namespace", token: apiA, instance: "api-x", wantCode: codes.PermissionDenied, wantErr: "instance of other/api"},
		{name: "again", token: apiA, instance: "api-0", wantCode: codes.Unauthenticated, wantErr: "already used for this instance"},
		{name: "forged for web", token: forgedWeb, instance: "web-0", wantCode: codes.Unauthenticated, wantErr: "does not verify"},
		// The refusals spent nothing: the node's own token still admits web-0.
		{name: "node token beside it", token: mustNodeToken(t, key, "node-a"), instance: "web-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := join(t, c, tt.instance, tt.token)
			if tt.wantCode == codes.OK {
				if err != nil {
					t.Fatalf("join: %v", err)
				}
				leaf, err := x509.ParseCertificate(cert.Certificate[0])
				if err != nil {
					t.Fatal(err)
				}
				if id, err := spiffe.FromCert(leaf); err != nil || id.Service != strings.TrimSuffix(strings.TrimSuffix(tt.instance, "-0"), "-1") {
					t.Fatalf("certificate identity = %v (%v), want the service of %s", id, err, tt.instance)
				}
				return
			}
			if err == nil || status.Code(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("join: %v, want %v containing %q", err, tt.wantCode, tt.wantErr)
			}
		})
	}
}
