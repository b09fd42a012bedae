package meshserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/spiffe"
)

// OnNode makes the test registry a NodeLister, as the controller is.
func (w registryWorkloads) OnNode(adapter, node string) []model.Instance {
	var out []model.Instance
	for _, e := range w.reg.Entries() {
		if e.Adapter == adapter && e.Instance.Node == node {
			out = append(out, e.Instance)
		}
	}
	return out
}

// A node proxy that its scheduler runs (a Nomad system job) joins with its
// own credential, which its adapter says is a node proxy's on some node.
// Two nodes are simulated: the adapter's snapshot places instances on
// node-a and node-b, some in node mode, one not, one with no node. The
// adapter here is as bad as an adapter can be (it vouches for a node
// proxy's credential for ANY instance it names): what stands is what the
// controller checks itself against the snapshot. A node proxy of node-a
// is told, and gets certificates for, node-a's node-mode instances only.
func TestSchedulerNodeProxyGetsOnlyItsOwnNodesInstances(t *testing.T) {
	h := start(t)
	node := map[string]string{model.MetaProxyMode: model.ProxyModeNode}
	inst := func(id, svc, onNode string, meta map[string]string) model.Instance {
		return model.Instance{ID: id, Service: svc, Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}, Node: onNode, Meta: meta}
	}
	h.reg.Update(model.Snapshot{Adapter: "nomad", Instances: []model.Instance{
		inst("a1/web", "web", "node-a", node),
		inst("a2/api", "api", "node-a", node),
		inst("a3/side", "side", "node-a", nil), // a sidecar-mode instance on node-a
		inst("b1/db", "db", "node-b", node),
		inst("n1/old", "old", "", node),
	}})
	// The same node name in another adapter's snapshot.
	h.reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("pay-0", "pay", "node-a", node)}})

	// Credentials: "node-proxy-of:<node>" is a node proxy's, "sidecar-of:<id>"
	// a sidecar's, "lying:<service>" a node proxy of node-a whose adapter
	// names another service, anything else is forged.
	h.srv.o.VerifyCredential = func(_ context.Context, adapter, instance, cred string) (CredentialClaims, error) {
		if adapter != "nomad" {
			return CredentialClaims{}, errors.New("no such adapter")
		}
		_, svc, _ := strings.Cut(instance, "/")
		switch kind, arg, _ := strings.Cut(cred, ":"); kind {
		case "node-proxy-of":
			return CredentialClaims{Instance: instance, Service: svc, Node: arg}, nil
		case "lying":
			return CredentialClaims{Instance: instance, Service: arg, Node: "node-a"}, nil
		case "sidecar-of":
			if instance != "" && instance != arg {
				return CredentialClaims{}, errors.New("the identity is for another allocation")
			}
			_, svc, _ := strings.Cut(arg, "/")
			return CredentialClaims{Instance: arg, Service: svc}, nil
		}
		return CredentialClaims{}, errors.New("Nomad refused the workload identity: it is forged")
	}
	c := h.dial(t, nil)

	t.Run("NodeInstances", func(t *testing.T) {
		tests := []struct {
			name, adapter, cred string
			want                []string
			wantCode            codes.Code
			wantErr             string
		}{
			{"node-a's proxy", "nomad", "node-proxy-of:node-a", []string{"a1/web", "a2/api"}, codes.OK, ""},
			{"node-b's proxy", "nomad", "node-proxy-of:node-b", []string{"b1/db"}, codes.OK, ""},
			{"a node with nothing in node mode", "nomad", "node-proxy-of:node-c", nil, codes.OK, ""},
			{"a sidecar's identity", "nomad", "sidecar-of:a3/side", nil, codes.PermissionDenied, "not a node proxy's"},
			{"forged", "nomad", "forged", nil, codes.PermissionDenied, "forged"},
			{"no credential", "nomad", "", nil, codes.InvalidArgument, "credential"},
			{"another adapter", "kubernetes", "node-proxy-of:node-a", nil, codes.PermissionDenied, "no such adapter"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r, err := c.NodeInstances(ctx, &meshapi.NodeInstancesRequest{CredentialAdapter: tt.adapter, Credential: tt.cred})
				if status.Code(err) != tt.wantCode || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
					t.Fatalf("NodeInstances: %v; want %v containing %q", err, tt.wantCode, tt.wantErr)
				}
				if err == nil && !slices.Equal(r.InstanceIds, tt.want) {
					t.Errorf("NodeInstances = %v, want %v", r.InstanceIds, tt.want)
				}
			})
		}
	})

	t.Run("Join", func(t *testing.T) {
		tests := []struct {
			name, cred, instance string
			wantCode             codes.Code
			wantErr              string
			wantService          string
		}{
			{name: "own node, node mode", cred: "node-proxy-of:node-a", instance: "a1/web", wantService: "web"},
			{name: "own node, another node-mode instance", cred: "node-proxy-of:node-a", instance: "a2/api", wantService: "api"},
			{name: "the other node's instance", cred: "node-proxy-of:node-a", instance: "b1/db", wantCode: codes.PermissionDenied, wantErr: `placed it on node "node-b"`},
			{name: "node-b's proxy for node-a's instance", cred: "node-proxy-of:node-b", instance: "a1/web", wantCode: codes.PermissionDenied, wantErr: `placed it on node "node-a"`},
			{name: "own node, sidecar mode", cred: "node-proxy-of:node-a", instance: "a3/side", wantCode: codes.PermissionDenied, wantErr: "did not choose node mode"},
			{name: "no node reported", cred: "node-proxy-of:node-a", instance: "n1/old", wantCode: codes.PermissionDenied, wantErr: "reports no node"},
			{name: "not in the snapshot", cred: "node-proxy-of:node-a", instance: "a9/ghost", wantCode: codes.Unavailable, wantErr: "retry shortly"},
			{name: "the adapter names another service", cred: "lying:db", instance: "a1/web", wantCode: codes.PermissionDenied, wantErr: "proves service default/db"},
			{name: "a sidecar's identity for another instance", cred: "sidecar-of:a3/side", instance: "a1/web", wantCode: codes.PermissionDenied, wantErr: "another allocation"},
			{name: "a sidecar's identity for its own instance, unchanged", cred: "sidecar-of:a3/side", instance: "a3/side", wantService: "side"},
			{name: "forged", cred: "forged", instance: "a1/web", wantCode: codes.PermissionDenied, wantErr: "forged"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				creds, err := c.Join(ctx, &meshapi.JoinRequest{InstanceId: tt.instance, CsrDer: csr, CredentialAdapter: "nomad", Credential: tt.cred})
				if tt.wantService == "" {
					if status.Code(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("Join = %v; want %v containing %q", err, tt.wantCode, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Join: %v", err)
				}
				b, _ := pem.Decode(creds.CertChainPem)
				leaf, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				id, err := spiffe.FromCert(leaf)
				if err != nil || id.Service != tt.wantService {
					t.Errorf("issued %v (%v), want the instance's own identity, service %s", id, err, tt.wantService)
				}
			})
		}
	})
}
