package meshserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// policyBinder is the controller's Binder in small: the policy in force
// decides, permissive mode lets an unbound workload through with
// ErrPermissive.
type policyBinder struct{ p atomic.Pointer[policy.Policy] }

func (b *policyBinder) Allowed(_ string, in model.Instance) error {
	p := b.p.Load()
	err := p.Bound(in.Service, in.Workload)
	if err != nil && p.Mesh.Permissive() {
		return fmt.Errorf("%w: %w", ErrPermissive, err)
	}
	return err
}

func bindingPolicy(mode policy.BindingMode, owner string) *policy.Policy {
	return &policy.Policy{
		Mesh: policy.Mesh{TrustDomain: "weft.local", DefaultAction: policy.Deny, IdentityBinding: mode},
		Services: map[string]policy.Service{"store": {Name: "store", Bindings: []policy.Binding{
			{Scheduler: "local", Match: map[string]string{"name": owner}},
		}}},
	}
}

// syncBuffer is a log sink the server's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestJoinAndRenewCheckBinding: a second local workload that claims the
// service "store" gets no certificate, neither by Join nor by Renew, while
// the owner's instance does; a policy change that unbinds the owner stops
// its renewals; permissive mode lets the claimant in, with a warning.
func TestJoinAndRenewCheckBinding(t *testing.T) {
	h := start(t)
	var logs syncBuffer
	b := &policyBinder{}
	b.p.Store(bindingPolicy(policy.BindingStrict, "store"))
	h.srv.o.Binder = b
	h.srv.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h.reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{
		{ID: "store-0", Service: "store", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001},
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": "store"}},
		{ID: "impostor-0", Service: "store", Address: "127.0.0.3", Ports: map[string]int{"app": 8080, "mesh": 15001},
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": "impostor"}},
		{ID: "nameless-0", Service: "store", Address: "127.0.0.4", Ports: map[string]int{"app": 8080, "mesh": 15001}},
	}})
	c := h.dial(t, nil)

	t.Run("Join", func(t *testing.T) {
		for _, tc := range []struct {
			id       string
			want     codes.Code
			contains []string
		}{
			{"store-0", codes.OK, nil},
			{"impostor-0", codes.PermissionDenied, []string{`workload local name="impostor"`, `service "store"`, `binding "local" { name = "impostor" }`}},
			{"nameless-0", codes.PermissionDenied, []string{"reported no workload"}},
		} {
			t.Run(tc.id, func(t *testing.T) {
				_, err := join(t, c, tc.id, h.token(t, tc.id, "store"))
				if status.Code(err) != tc.want {
					t.Fatalf("join: %v, want %v", err, tc.want)
				}
				for _, s := range tc.contains {
					if !strings.Contains(status.Convert(err).Message(), s) {
						t.Errorf("refusal %q does not say %q", status.Convert(err).Message(), s)
					}
				}
			})
		}
	})

	owner, err := join(t, c, "store-0", h.token(t, "store-0", "store"))
	if err != nil {
		t.Fatal(err)
	}
	renew := func(t *testing.T, id string) error {
		_, csr := newCSR(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := h.dial(t, owner).Renew(ctx, &meshapi.RenewRequest{InstanceId: id, CsrDer: csr})
		return err
	}
	t.Run("Renew", func(t *testing.T) {
		if err := renew(t, "store-0"); err != nil {
			t.Fatalf("the owner's renewal: %v", err)
		}
		// The owner's certificate names service store: renewing for the
		// impostor's instance is refused by the binding, not just allowed
		// because the service matches.
		if err := renew(t, "impostor-0"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "impostor") {
			t.Fatalf("renewal for the unbound instance: %v, want PermissionDenied naming it", err)
		}
		// A policy change that unbinds the owner stops its renewals.
		b.p.Store(bindingPolicy(policy.BindingStrict, "someone-else"))
		if err := renew(t, "store-0"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `binding "local" { name = "store" }`) {
			t.Fatalf("renewal after the policy unbound the owner: %v, want PermissionDenied with the binding to add", err)
		}
		b.p.Store(bindingPolicy(policy.BindingStrict, "store"))
		if err := renew(t, "store-0"); err != nil {
			t.Fatalf("renewal after the binding came back: %v", err)
		}
	})

	t.Run("Permissive", func(t *testing.T) {
		b.p.Store(bindingPolicy(policy.BindingPermissive, "store"))
		if _, err := join(t, c, "impostor-0", h.token(t, "impostor-0", "store")); err != nil {
			t.Fatalf("join of an unbound workload in permissive mode: %v", err)
		}
		if !strings.Contains(logs.String(), "identity_binding is permissive") || !strings.Contains(logs.String(), "impostor-0") {
			t.Errorf("no warning naming the unbound instance in the log:\n%s", logs.String())
		}
	})
}

func TestCheckBindingCodes(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	in := model.Instance{ID: "a-0", Service: "a"}
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"bound", nil, codes.OK},
		{"unbound", errors.New("no binding"), codes.PermissionDenied},
		{"permissive", fmt.Errorf("%w: no binding", ErrPermissive), codes.OK},
		{"binder's own code", status.Error(codes.Unavailable, "no policy yet"), codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.o.Binder = binderFunc(func(string, model.Instance) error { return tc.err })
			if got := status.Code(s.checkBinding("join", "local", in)); got != tc.want {
				t.Errorf("code %v, want %v", got, tc.want)
			}
		})
	}
}

type binderFunc func(string, model.Instance) error

func (f binderFunc) Allowed(a string, in model.Instance) error { return f(a, in) }
