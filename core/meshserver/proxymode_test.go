package meshserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// policyWorkloads adds the policy's proxy modes to the test registry, as
// the controller adds the policy in force (core/controller AdmitShared).
type policyWorkloads struct {
	registryWorkloads
	p *policy.Policy
}

func (w policyWorkloads) AdmitShared(service, kind string) error {
	return w.p.AdmitShared(service, policy.ProxyMode(kind))
}

// The hostile case of policy's proxy_mode: the scheduler's side says node
// mode (Nomad's weft_proxy_mode=node tag, the local adapter's node token)
// for services the policy keeps in instance mode, and a node proxy asks
// for their certificates. Policy wins: refused, whatever the tag or token
// says, on both paths (a node token, a scheduler credential), and the
// Nomad node proxy is not even told about such instances. Where policy
// says node (or says nothing), the node proxy is admitted as before; a
// sidecar is never refused by proxy_mode (it holds one identity).
func TestPolicyProxyModeRefusesSharedProxies(t *testing.T) {
	h := start(t)
	node := map[string]string{model.MetaProxyMode: model.ProxyModeNode}
	inst := func(id, svc string, meta map[string]string) model.Instance {
		return model.Instance{ID: id, Service: svc, Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}, Node: "node-a", Meta: meta}
	}
	h.reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{
		inst("web-0", "web", nil),     // policy: node
		inst("pay-0", "pay", nil),     // policy: instance
		inst("pay-1", "pay", nil),     // policy: instance
		inst("batch-0", "batch", nil), // policy: application
		inst("old-0", "old", nil),     // policy: the mesh default, instance
	}})
	h.reg.Update(model.Snapshot{Adapter: "nomad", Instances: []model.Instance{
		inst("a1/api", "api", node),   // tag node, policy node: agree
		inst("a2/pay", "pay", node),   // tag node, policy instance: the hostile case
		inst("a3/free", "free", node), // tag node, policy silent... but the mesh default is instance
	}})
	p := &policy.Policy{Mesh: policy.Mesh{DefaultProxyMode: policy.ProxyInstance}, Services: map[string]policy.Service{
		"web":   {Name: "web", ProxyMode: policy.ProxyNode},
		"api":   {Name: "api", ProxyMode: policy.ProxyNode},
		"pay":   {Name: "pay", ProxyMode: policy.ProxyInstance},
		"batch": {Name: "batch", ProxyMode: policy.ProxyApplication},
	}}
	h.srv.o.Workloads = policyWorkloads{workloadsOf(h.reg, "weft.local").(registryWorkloads), p}
	h.srv.o.VerifyCredential = func(_ context.Context, adapter, instance, cred string) (CredentialClaims, error) {
		if adapter != "nomad" || cred != "node-proxy-of:node-a" {
			return CredentialClaims{}, errors.New("forged")
		}
		_, svc, _ := strings.Cut(instance, "/")
		return CredentialClaims{Instance: instance, Service: svc, Node: "node-a"}, nil
	}
	c := h.dial(t, nil)
	key := ca.DeriveJoinKey(h.ca.JoinSecret(), "local")
	app := func(svc string) string {
		tok, err := ca.MintApplicationToken(key, "local", "node-a", "", svc, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	nodeA := mustNodeToken(t, key, "node-a")

	t.Run("tokens", func(t *testing.T) {
		tests := []struct {
			name, token, instance string
			wantCode              codes.Code
			wantErr               string
		}{
			{name: "node mode by policy: the node proxy", token: nodeA, instance: "web-0"},
			{name: "instance mode by policy: the node proxy is refused", token: nodeA, instance: "pay-0", wantCode: codes.PermissionDenied,
				wantErr: `policy keeps service "pay" from node proxies: service "pay" sets proxy_mode = "instance"`},
			{name: "instance mode by policy: its application proxy is refused", token: app("pay"), instance: "pay-1", wantCode: codes.PermissionDenied,
				wantErr: `from application proxies`},
			{name: "application mode by policy: the node proxy is refused", token: nodeA, instance: "batch-0", wantCode: codes.PermissionDenied,
				wantErr: `service "batch" sets proxy_mode = "application"`},
			{name: "application mode by policy: its application proxy", token: app("batch"), instance: "batch-0"},
			{name: "the mesh default instance: the node proxy is refused", token: nodeA, instance: "old-0", wantCode: codes.PermissionDenied,
				wantErr: `the mesh's default_proxy_mode is "instance"`},
			// A refusal spends nothing, and a sidecar is never refused by
			// proxy_mode: pay-0 still joins with its own join token.
			{name: "the sidecar of an instance-mode service", token: h.token(t, "pay-0", "pay"), instance: "pay-0"},
			{name: "the sidecar of a node-mode service (a mismatch, not a refusal)", token: h.token(t, "web-0", "web"), instance: "web-0"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := join(t, c, tt.instance, tt.token)
				if tt.wantCode == codes.OK {
					if err != nil {
						t.Fatalf("join: %v", err)
					}
					return
				}
				if err == nil || status.Code(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("join: %v, want %v containing %q", err, tt.wantCode, tt.wantErr)
				}
			})
		}
	})

	t.Run("scheduler credential", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := c.NodeInstances(ctx, &meshapi.NodeInstancesRequest{CredentialAdapter: "nomad", Credential: "node-proxy-of:node-a"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a1/api"}; !slices.Equal(r.InstanceIds, want) {
			t.Errorf("NodeInstances = %v, want %v (the tag says node for all three; policy for one)", r.InstanceIds, want)
		}
		tests := []struct {
			instance string
			wantErr  string // "" admitted
		}{
			{"a1/api", ""},
			{"a2/pay", `policy keeps service "pay" from node proxies`},
			{"a3/free", `the mesh's default_proxy_mode is "instance"`},
		}
		for _, tt := range tests {
			t.Run(tt.instance, func(t *testing.T) {
				k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
				_, err := c.Join(ctx, &meshapi.JoinRequest{InstanceId: tt.instance, CsrDer: csr, CredentialAdapter: "nomad", Credential: "node-proxy-of:node-a"})
				switch {
				case tt.wantErr == "" && err != nil:
					t.Fatalf("join: %v", err)
				case tt.wantErr != "" && (status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tt.wantErr)):
					t.Fatalf("join: %v, want PermissionDenied containing %q", err, tt.wantErr)
				}
			})
		}
	})
}
