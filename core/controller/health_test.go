package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// healthMesh is a controller with a config server as its listener, a
// policy where web calls api, and web-0, api-0, api-1 (passing) and api-2
// (critical by its scheduler) in its registry.
type healthMesh struct {
	t   *testing.T
	reg *registry.Registry
	c   *Controller
	srv *meshserver.Server
	ins map[string]model.Instance
}

func newHealthMesh(t *testing.T, grace time.Duration) *healthMesh {
	t.Helper()
	m := &healthMesh{t: t, reg: registry.New(), ins: map[string]model.Instance{}}
	m.c = New(Options{Registry: m.reg, SidecarHealthGrace: grace})
	m.srv = meshserver.New(meshserver.Options{Workloads: m.c, Health: m.c})
	bind := func(svc string) []policy.Binding {
		return []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": svc}}}
	}
	m.c.applyPolicy(&policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{
			"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}, Bindings: bind("web")},
			"api": {Name: "api", Bindings: bind("api")},
		}})
	m.add("web-0", "web", "127.0.0.2", model.HealthPassing)
	m.add("api-0", "api", "127.0.0.3", model.HealthPassing)
	m.add("api-1", "api", "127.0.0.4", model.HealthPassing)
	m.add("api-2", "api", "127.0.0.5", model.HealthCritical)
	m.c.setListeners([]Listener{ConfigServer(m.srv)})
	m.c.rebuild()
	return m
}

// add puts an instance in the adapter's snapshot; remove takes it out.
func (m *healthMesh) add(id, svc, addr string, h model.Health) {
	m.ins[id] = model.Instance{ID: id, Service: svc, Address: addr, Health: h, Ports: map[string]int{"app": 8080, "mesh": 15001},
		Workload: map[string]string{model.WorkloadScheduler: "local", "name": svc}}
	m.snapshot()
}

func (m *healthMesh) remove(id string) {
	delete(m.ins, id)
	m.snapshot()
}

func (m *healthMesh) snapshot() {
	var s model.Snapshot
	s.Adapter = "local"
	for _, in := range m.ins {
		s.Instances = append(s.Instances, in)
	}
	m.reg.Update(s)
}

// endpoints are the api endpoints in web-0's configuration as the config
// server holds it, after it was checked against a full compilation of
// the registry with critical the instances in critical (what the overlay
// must amount to).
func (m *healthMesh) endpoints(critical ...string) []string {
	m.t.Helper()
	entries := m.reg.Entries()
	for i := range entries {
		if slices.Contains(critical, entries[i].Instance.ID) {
			entries[i].Instance.Health = model.HealthCritical
		}
	}
	want := compile.Compile(m.c.Policy(), entries)
	for id, w := range want {
		got, _, ok := m.srv.Config(id)
		if !ok {
			m.t.Fatalf("the server has no configuration for %s", id)
		}
		w.Trust = got.Trust
		if !proto.Equal(got, w) {
			m.t.Fatalf("%s: incremental %v, want the full compilation %v", id, got, w)
		}
	}
	cfg, _, _ := m.srv.Config("web-0")
	var out []string
	for _, u := range cfg.GetUpstreams() {
		for _, e := range u.GetEndpoints() {
			out = append(out, e.GetInstanceId())
		}
	}
	slices.Sort(out)
	return out
}

// woken reports whether the overlay asked Run for a rebuild, and takes
// the signal.
func (m *healthMesh) woken() bool {
	select {
	case <-m.c.health.wake:
		return true
	default:
		return false
	}
}

func TestSidecarHealthOverlay(t *testing.T) {
	m := newHealthMesh(t, time.Hour)
	expect := func(step string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: web-0's api endpoints = %v, want %v", step, got, want)
		}
	}
	expect("at the start", m.endpoints(), "api-0", "api-1")

	m.c.ReportHealth("api-0", false, "GET /health: 500")
	if !m.woken() {
		t.Fatal("a failing report did not ask for a rebuild")
	}
	m.c.rebuild()
	expect("api-0's sidecar reports failing", m.endpoints("api-0"), "api-1")
	if h, reason, ok := m.c.SidecarHealth("api-0"); !ok || h || reason != "GET /health: 500" {
		t.Errorf("SidecarHealth(api-0) = %v %q %v", h, reason, ok)
	}

	// Still failing, for another reason: nothing to compile.
	m.c.ReportHealth("api-0", false, "GET /health: 503")
	if m.woken() {
		t.Error("a new reason for the same failure asked for a rebuild")
	}

	// The scheduler changes the failing instance's record meanwhile: the
	// overlay still holds, and the incremental result is still the full
	// one.
	m.add("api-0", "api", "127.0.0.13", model.HealthPassing)
	m.c.rebuild()
	expect("api-0 moved while failing", m.endpoints("api-0"), "api-1")

	m.c.ReportHealth("api-0", true, "")
	if !m.woken() {
		t.Fatal("a passing report did not ask for a rebuild")
	}
	m.c.rebuild()
	expect("api-0's sidecar reports passing", m.endpoints(), "api-0", "api-1")

	// A passing report does not overrule the scheduler.
	m.c.ReportHealth("api-2", true, "")
	if m.woken() {
		t.Error("a first report that passes asked for a rebuild")
	}
	m.c.rebuild()
	expect("api-2 critical by its scheduler, passing its checks", m.endpoints(), "api-0", "api-1")

	// An instance that leaves takes its report with it: when an instance
	// of that ID comes back, its scheduler's health counts.
	m.c.ReportHealth("api-1", false, "connect: connection refused")
	m.c.rebuild()
	expect("api-1 failing", m.endpoints("api-1"), "api-0")
	m.remove("api-1")
	m.c.rebuild()
	expect("api-1 gone", m.endpoints(), "api-0")
	if _, _, ok := m.c.SidecarHealth("api-1"); ok {
		t.Error("the report of an instance that left is still held")
	}
	m.add("api-1", "api", "127.0.0.4", model.HealthPassing)
	m.c.rebuild()
	expect("api-1 back", m.endpoints(), "api-0", "api-1")
}

// TestSidecarHealthGrace: a failing report outlives its stream by the
// grace, then the scheduler's health counts again; a sidecar that
// reconnects and reports within the grace keeps its report in force.
func TestSidecarHealthGrace(t *testing.T) {
	t.Run("expires", func(t *testing.T) {
		m := newHealthMesh(t, time.Millisecond)
		m.c.ReportHealth("api-0", false, "down")
		m.woken()
		m.c.rebuild()
		if got := m.endpoints("api-0"); !slices.Equal(got, []string{"api-1"}) {
			t.Fatalf("endpoints = %v", got)
		}
		m.c.StreamGone("api-0")
		select {
		case <-m.c.health.wake:
		case <-time.After(5 * time.Second):
			t.Fatal("the report did not expire within 5s of a 1ms grace")
		}
		m.c.rebuild()
		if got := m.endpoints(); !slices.Equal(got, []string{"api-0", "api-1"}) {
			t.Fatalf("after the grace, endpoints = %v, want api-0 back", got)
		}
	})
	t.Run("reported again", func(t *testing.T) {
		m := newHealthMesh(t, time.Hour)
		m.c.ReportHealth("api-0", false, "down")
		m.c.StreamGone("api-0")
		m.c.health.mu.Lock()
		old := m.c.health.reports["api-0"]
		m.c.health.mu.Unlock()
		m.c.ReportHealth("api-0", false, "down") // the reconnected sidecar
		m.c.health.expire("api-0", old)          // the old stream's timer, had it fired
		if _, _, ok := m.c.SidecarHealth("api-0"); !ok {
			t.Fatal("the old stream's grace dropped the report of the new one")
		}
		m.c.StreamGone("api-0")
		m.c.StreamGone("api-0") // a second end does not restart the clock
		m.c.health.mu.Lock()
		r := m.c.health.reports["api-0"]
		m.c.health.mu.Unlock()
		m.c.health.expire("api-0", r)
		if _, _, ok := m.c.SidecarHealth("api-0"); ok {
			t.Fatal("the report outlived its grace")
		}
	})
}

// TestRunRebuildsOnHealth: Run compiles again when a sidecar's report
// changes an instance's health, with no snapshot or policy arriving.
func TestRunRebuildsOnHealth(t *testing.T) {
	built := make(chan struct{}, 10)
	reg := registry.New()
	c := New(Options{Registry: reg, OnBuild: func(int, int) { built <- struct{}{} }})
	srv := meshserver.New(meshserver.Options{Workloads: c, Health: c})
	snaps := make(chan model.Snapshot, 1)
	pols := make(chan *policy.Policy, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, snaps, pols, ConfigServer(srv)) }()
	defer func() { cancel(); <-done }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-built:
		case <-time.After(10 * time.Second):
			t.Fatalf("no compilation within 10s after %s", what)
		}
	}
	pols <- &policy.Policy{Mesh: policy.Mesh{DefaultAction: policy.Deny, IdentityBinding: policy.BindingPermissive},
		Services: map[string]policy.Service{"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}}}}
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{
		{ID: "web-0", Service: "web", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}},
		{ID: "api-0", Service: "api", Address: "127.0.0.3", Ports: map[string]int{"app": 8080, "mesh": 15001}},
	}}
	wait("the first snapshot")
	for len(built) > 0 {
		<-built
	}
	eps := func() int {
		cfg, _, _ := srv.Config("web-0")
		return len(cfg.GetUpstreams()[0].GetEndpoints())
	}
	if n := eps(); n != 1 {
		t.Fatalf("web-0 has %d api endpoints, want 1", n)
	}
	c.ReportHealth("api-0", false, "down")
	wait("a failing report")
	if n := eps(); n != 0 {
		t.Fatalf("web-0 has %d api endpoints after api-0 reported failing, want 0", n)
	}
	c.ReportHealth("api-0", true, "")
	wait("a passing report")
	if n := eps(); n != 1 {
		t.Fatalf("web-0 has %d api endpoints after api-0 reported passing, want 1", n)
	}
}
