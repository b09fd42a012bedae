package controller

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

func TestRunCompilesAfterPolicy(t *testing.T) {
	built := make(chan [2]int, 10)
	reg := registry.New()
	c := New(Options{Registry: reg, OnBuild: func(n, changed int) { built <- [2]int{n, changed} }})
	srv := meshserver.New(meshserver.Options{Workloads: c})

	snaps := make(chan model.Snapshot)
	pols := make(chan *policy.Policy)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, snaps, pols, ConfigServer(srv)) }()

	good := model.Instance{ID: "api-0", Service: "api", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}}
	bad := model.Instance{ID: "bad", Service: "NOT VALID", Address: "127.0.0.3", Ports: map[string]int{"mesh": 15001}}
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{good, bad}}
	if c.Builds() != 0 {
		t.Fatal("compiled before any policy arrived")
	}
	pols <- &policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny}}
	wait := func() [2]int {
		select {
		case b := <-built:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no compilation within 10s")
		}
		return [2]int{}
	}
	if b := wait(); b != [2]int{1, 1} {
		t.Errorf("build = %v, want 1 config, 1 changed (the bad record skipped)", b)
	}
	cfg, _, ok := srv.Config("api-0")
	if !ok || cfg.SpiffeId != "spiffe://example.org/ns/default/svc/api" {
		t.Errorf("config = %v, %v", cfg, ok)
	}
	if c.TrustDomain() != "example.org" {
		t.Errorf("TrustDomain = %q", c.TrustDomain())
	}
	// The same snapshot again changes nothing and compiles nothing.
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{good, bad}}
	good.Ports = map[string]int{"app": 8081, "mesh": 15001}
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{good}}
	if b := wait(); b != [2]int{1, 1} {
		t.Errorf("build after a port change = %v, want 1 config, 1 changed", b)
	}
	if c.Builds() != 2 {
		t.Errorf("Builds = %d, want 2", c.Builds())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestUnboundWorkloads: the controller's Binder answers from the policy in
// force, and each unbound instance is counted, named and logged once;
// permissive mode warns instead.
func TestUnboundWorkloads(t *testing.T) {
	var logs bytes.Buffer
	reg := registry.New()
	c := New(Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	owner := model.Instance{ID: "store-0", Service: "store", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001},
		Workload: map[string]string{model.WorkloadScheduler: "local", "name": "store"}}
	impostor := owner
	impostor.ID, impostor.Address, impostor.Workload = "impostor-0", "127.0.0.3", map[string]string{model.WorkloadScheduler: "local", "name": "impostor"}

	if err := c.Allowed("local", owner); status.Code(err) != codes.Unavailable {
		t.Errorf("Allowed before any policy: %v, want Unavailable", err)
	}
	reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{owner, impostor}})
	pol := func(mode policy.BindingMode) *policy.Policy {
		return &policy.Policy{Mesh: policy.Mesh{TrustDomain: "t", DefaultAction: policy.Deny, IdentityBinding: mode},
			Services: map[string]policy.Service{"store": {Name: "store", Bindings: []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": "store"}}}}}}
	}
	c.applyPolicy(pol(policy.BindingStrict))
	c.rebuild()
	c.rebuild()
	if err := c.Allowed("local", owner); err != nil {
		t.Errorf("Allowed(owner) = %v", err)
	}
	err := c.Allowed("local", impostor)
	var ue *policy.UnboundError
	if !errors.As(err, &ue) || errors.Is(err, meshserver.ErrPermissive) {
		t.Errorf("Allowed(impostor) = %v, want an UnboundError", err)
	}
	skipped, permissive := c.Unbound()
	if permissive || len(skipped) != 1 || skipped[0].Instance != "impostor-0" || skipped[0].Reason != "unbound workload" {
		t.Errorf("Unbound = %+v, %v; want impostor-0, strict", skipped, permissive)
	}
	if n := strings.Count(logs.String(), "instance=impostor-0"); n != 1 {
		t.Errorf("impostor-0 logged %d times over two compilations, want once:\n%s", n, logs.String())
	}

	c.applyPolicy(pol(policy.BindingPermissive))
	c.rebuild()
	if err := c.Allowed("local", impostor); !errors.Is(err, meshserver.ErrPermissive) {
		t.Errorf("Allowed(impostor), permissive = %v, want ErrPermissive", err)
	}
	if _, permissive := c.Unbound(); !permissive {
		t.Error("Unbound does not report permissive mode")
	}
	if !strings.Contains(logs.String(), "UNBOUND WORKLOAD SERVED") || !strings.Contains(logs.String(), `identity_binding is \"permissive\"`) {
		t.Errorf("no loud warning in permissive mode:\n%s", logs.String())
	}
}

// After a (re)start, nothing is compiled until every configured adapter has
// sent its first snapshot (an empty one counts): no sidecar gets a
// configuration that lacks another adapter's endpoints. A wait that passes
// serves what there is and says which adapter is missing.
func TestFirstSnapshotGate(t *testing.T) {
	inst := func(id, svc, addr string) model.Instance {
		return model.Instance{ID: id, Service: svc, Address: addr, Ports: map[string]int{"app": 8080, "mesh": 15001}}
	}
	pol := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny, IdentityBinding: policy.BindingPermissive},
		Services: map[string]policy.Service{"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}}, "api": {Name: "api"}}}
	start := func(t *testing.T, wait time.Duration) (*Controller, *meshserver.Server, chan model.Snapshot, chan [2]int) {
		built := make(chan [2]int, 10)
		reg := registry.New()
		c := New(Options{Registry: reg, Adapters: []string{"local", "nomad"}, FirstSnapshotWait: wait,
			OnBuild: func(n, changed int) { built <- [2]int{n, changed} }})
		srv := meshserver.New(meshserver.Options{Workloads: c})
		snaps, pols := make(chan model.Snapshot), make(chan *policy.Policy, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx, snaps, pols, ConfigServer(srv)); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		pols <- pol
		return c, srv, snaps, built
	}
	nothingBuilt := func(t *testing.T, c *Controller, built chan [2]int) {
		t.Helper()
		select {
		case b := <-built:
			t.Fatalf("compiled %v before every adapter's first snapshot (waiting for %v)", b, first(c.Waiting()))
		default:
		}
	}

	t.Run("held back until both adapters report", func(t *testing.T) {
		c, srv, snaps, built := start(t, time.Hour)
		snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("web-0", "web", "127.0.0.2")}}
		// The send above is taken by Run's loop; a second send proves the
		// first was handled.
		snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("web-0", "web", "127.0.0.2")}}
		nothingBuilt(t, c, built)
		if w, gaveUp := c.Waiting(); len(w) != 1 || w[0] != "nomad" || gaveUp {
			t.Errorf("Waiting() = %v, %v; want [nomad], false", w, gaveUp)
		}
		snaps <- model.Snapshot{Adapter: "nomad", Instances: []model.Instance{inst("api-0", "api", "10.0.0.1")}}
		select {
		case <-built:
		case <-time.After(10 * time.Second):
			t.Fatal("no compilation within 10s of the last first snapshot")
		}
		cfg, _, ok := srv.Config("web-0")
		if !ok || len(cfg.GetUpstreams()) != 1 || len(cfg.GetUpstreams()[0].GetEndpoints()) != 1 {
			t.Errorf("web-0's first configuration lacks the nomad adapter's api endpoint: %v", cfg)
		}
		if w, _ := c.Waiting(); len(w) != 0 {
			t.Errorf("still waiting for %v", w)
		}
	})

	t.Run("an empty first snapshot counts", func(t *testing.T) {
		c, _, snaps, built := start(t, time.Hour)
		snaps <- model.Snapshot{Adapter: "nomad"}
		snaps <- model.Snapshot{Adapter: "nomad"}
		nothingBuilt(t, c, built)
		snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("web-0", "web", "127.0.0.2")}}
		select {
		case <-built:
		case <-time.After(10 * time.Second):
			t.Fatal("no compilation within 10s")
		}
	})

	t.Run("a bounded wait, then served and named", func(t *testing.T) {
		c, srv, snaps, built := start(t, 100*time.Millisecond)
		snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("web-0", "web", "127.0.0.2")}}
		select {
		case <-built:
		case <-time.After(10 * time.Second):
			t.Fatal("no compilation within 10s of a 100ms wait")
		}
		if _, _, ok := srv.Config("web-0"); !ok {
			t.Error("web-0 has no configuration after the wait")
		}
		if w, gaveUp := c.Waiting(); len(w) != 1 || w[0] != "nomad" || !gaveUp {
			t.Errorf("Waiting() = %v, %v; want [nomad], true", w, gaveUp)
		}
		snaps <- model.Snapshot{Adapter: "nomad"}
		snaps <- model.Snapshot{Adapter: "nomad"}
		if w, _ := c.Waiting(); len(w) != 0 {
			t.Errorf("after nomad reported, Waiting() = %v", w)
		}
	})
}

func first[A, B any](a A, _ B) A { return a }

// recorder is a listener that keeps what it is published.
type recorder struct {
	builds  chan Build
	changed int
}

func (r *recorder) Publish(b Build) int { r.builds <- b; return r.changed }

// TestListeners: every compilation reaches every listener given to Run, in
// order, with the policy it was compiled from and every configuration;
// the build counts the most configurations any listener found changed.
func TestListeners(t *testing.T) {
	tests := []struct {
		name         string
		extraChanged int
		wantChanged  int
	}{
		{"the config server counts", 0, 1},
		{"another listener counts more", 5, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			built := make(chan [2]int, 1)
			c := New(Options{Registry: registry.New(), OnBuild: func(n, changed int) { built <- [2]int{n, changed} }})
			srv := meshserver.New(meshserver.Options{Workloads: c})
			rec := &recorder{builds: make(chan Build, 1), changed: tc.extraChanged}
			snaps, pols := make(chan model.Snapshot, 1), make(chan *policy.Policy, 1)
			snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{{ID: "api-0", Service: "api", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}}}}
			pol := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny}}
			pols <- pol
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { c.Run(ctx, snaps, pols, ConfigServer(srv), rec); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			var b Build
			select {
			case b = <-rec.builds:
			case <-time.After(10 * time.Second):
				t.Fatal("the second listener got no build within 10s")
			}
			if b.Policy != pol || len(b.Configs) != 1 || b.Configs["api-0"].GetSpiffeId() != "spiffe://example.org/ns/default/svc/api" {
				t.Errorf("build = %+v, want the policy and api-0's configuration", b)
			}
			// Both listeners got the same build: the configuration the
			// config server serves is the one the second listener got.
			if cfg, _, ok := srv.Config("api-0"); !ok || cfg != b.Configs["api-0"] {
				t.Errorf("config server has %v, %v; want the published configuration", cfg, ok)
			}
			select {
			case got := <-built:
				if got != [2]int{1, tc.wantChanged} {
					t.Errorf("build = %v, want 1 configuration, %d changed", got, tc.wantChanged)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no OnBuild within 10s")
			}
		})
	}
}
