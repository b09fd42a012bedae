package control_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/proxy/control"
	"github.com/weftmesh/weft/core/proxy/creds"
	"github.com/weftmesh/weft/core/proxy/proxytest"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

var quiet = slog.New(slog.DiscardHandler)

// runClient runs c until the end of the test.
func runClient(t *testing.T, c *control.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(proxytest.Wait):
			t.Error("Run did not return after its context ended")
		}
	})
}

// TestReportHealthSentAndResent: the latest report rides on the
// subscription, a new one goes out at once on the live stream, and the
// subscription after a reconnect carries the latest again.
func TestReportHealthSentAndResent(t *testing.T) {
	pki, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	f := proxytest.StartController(t, pki, proxytest.ControllerOptions{Service: "api"})
	c, err := control.New(&tenant{instance: "api-1"}, control.Options{
		InstanceID: "api-1", Controllers: []string{f.Addr}, TrustBundle: pki.Pool, JoinToken: f.Token,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Reports before any stream never block, and only the latest is sent.
	for i := range 1000 {
		c.ReportHealth(i%2 == 0, "GET /health: 500")
	}
	c.ReportHealth(false, "GET /health: 503")
	runClient(t, c)

	check := func(step string, r *meshapi.ConfigRequest, healthy bool, reason string) {
		t.Helper()
		h := r.GetHealth()
		if r.GetInstanceId() != "api-1" || h == nil || h.GetHealthy() != healthy || h.GetReason() != reason || h.GetObservedUnixMs() == 0 {
			t.Fatalf("%s: request %v, want instance api-1 and health %v %q with its time", step, r, healthy, reason)
		}
	}
	check("the subscription", f.NextRequest(t), false, "GET /health: 503")
	c.ReportHealth(true, "")
	check("a report on the live stream", f.NextRequest(t), true, "")
	c.ReportHealth(false, "connect: connection refused")
	check("another one", f.NextRequest(t), false, "connect: connection refused")
	f.Kick(t)
	check("the subscription after a reconnect", f.NextRequest(t), false, "connect: connection refused")
	// ACKs still work beside the reports.
	f.Send(t, &meshapi.ConfigUpdate{Version: 7, Config: &meshapi.ProxyConfig{InstanceId: "api-1"}})
	if r := f.NextRequest(t); r.GetAppliedVersion() != 7 || r.GetHealth() != nil {
		t.Fatalf("after version 7: %v, want its ACK alone", r)
	}
}

// endpointWatcher is a Watcher that keeps the instances of the endpoints
// of its configuration's upstreams, and says when they change.
type endpointWatcher struct {
	instance string
	mu       sync.Mutex
	version  uint64
	eps      []string
	changed  chan struct{}
}

func newEndpointWatcher(instance string) *endpointWatcher {
	return &endpointWatcher{instance: instance, changed: make(chan struct{}, 1)}
}

func (w *endpointWatcher) Apply(version uint64, cfg *meshapi.ProxyConfig) error {
	var eps []string
	for _, u := range cfg.GetUpstreams() {
		for _, e := range u.GetEndpoints() {
			eps = append(eps, e.GetInstanceId())
		}
	}
	slices.Sort(eps)
	w.mu.Lock()
	w.version, w.eps = version, eps
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return nil
}

func (w *endpointWatcher) SetCredentials(*creds.Credentials) {}

// waitFor waits until the watcher has applied a version above after with
// endpoints want, and returns that version.
func (w *endpointWatcher) waitFor(t *testing.T, step string, after uint64, want ...string) uint64 {
	t.Helper()
	deadline := time.After(proxytest.Wait)
	for {
		w.mu.Lock()
		v, eps := w.version, w.eps
		w.mu.Unlock()
		if v > after && slices.Equal(eps, want) {
			return v
		}
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("%s: %s's endpoints are %v (version %d), want %v in a version above %d within %s", step, w.instance, eps, v, want, after, proxytest.Wait)
		}
	}
}

// meshController is a real controller (core/controller, core/compile,
// core/meshserver) serving sidecars over mTLS on a loopback address.
type meshController struct {
	ctl  *controller.Controller
	addr string
	stop func()
}

func startMeshController(t *testing.T, authority *ca.CA, addr string, pol *policy.Policy, snap model.Snapshot) *meshController {
	t.Helper()
	reg := registry.New()
	ctl := controller.New(controller.Options{Registry: reg, Logger: quiet})
	srv := meshserver.New(meshserver.Options{CA: authority, Join: ca.NewJoinVerifier(authority.JoinSecret()),
		Workloads: ctl, Binder: ctl, Health: ctl, Logger: quiet})
	serving, err := srv.ServingTLSConfig(spiffe.Identity{TrustDomain: pol.Mesh.TrustDomain, Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService},
		[]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(serving)))
	srv.Register(g)
	go g.Serve(lis)
	ctx, cancel := context.WithCancel(context.Background())
	snaps := make(chan model.Snapshot, 1)
	pols := make(chan *policy.Policy, 1)
	snaps <- snap
	pols <- pol
	done := make(chan struct{})
	go func() { defer close(done); _ = ctl.Run(ctx, snaps, pols, controller.ConfigServer(srv)) }()
	var once sync.Once
	m := &meshController{ctl: ctl, addr: lis.Addr().String(), stop: func() {
		once.Do(func() { g.Stop(); cancel(); <-done })
	}}
	t.Cleanup(m.stop)
	return m
}

// TestHealthReportReachesCallers: a sidecar's report, through a real
// config server and controller and a real compilation, takes its instance
// out of a caller's endpoints and puts it back; after a controller
// restart the sidecar sends it again and the new controller applies it.
func TestHealthReportReachesCallers(t *testing.T) {
	authority, err := ca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bind := func(svc string) []policy.Binding {
		return []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": svc}}}
	}
	pol := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "weft.test", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{
			"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}, Bindings: bind("web")},
			"api": {Name: "api", Bindings: bind("api")},
		}}
	inst := func(id, svc, addr string) model.Instance {
		return model.Instance{ID: id, Service: svc, Address: addr, Health: model.HealthPassing, Ports: map[string]int{"app": 8080, "mesh": 15001},
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": svc}}
	}
	snap := model.Snapshot{Adapter: "local", Instances: []model.Instance{
		inst("web-0", "web", "127.0.0.2"), inst("api-0", "api", "127.0.0.3"), inst("api-1", "api", "127.0.0.4"),
	}}
	mc := startMeshController(t, authority, "127.0.0.1:0", pol, snap)

	client := func(w control.Watcher, id, svc string) *control.Client {
		tok, err := ca.MintJoinToken(ca.DeriveJoinKey(authority.JoinSecret(), "local"), ca.JoinClaims{Adapter: "local", Instance: id, Service: svc}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c, err := control.New(w, control.Options{InstanceID: id, Controllers: []string{mc.addr}, TrustBundle: authority.Pool(), JoinToken: tok,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		runClient(t, c)
		return c
	}
	web := newEndpointWatcher("web-0")
	client(web, "web-0", "web")
	api := client(newEndpointWatcher("api-0"), "api-0", "api")

	v := web.waitFor(t, "at the start", 0, "api-0", "api-1")
	api.ReportHealth(false, "GET /health: 500")
	v = web.waitFor(t, "api-0's sidecar reports failing", v, "api-1")
	if h, reason, ok := mc.ctl.SidecarHealth("api-0"); !ok || h || reason != "GET /health: 500" {
		t.Errorf("the controller holds %v %q %v for api-0", h, reason, ok)
	}
	api.ReportHealth(true, "")
	v = web.waitFor(t, "api-0's sidecar reports passing", v, "api-0", "api-1")
	api.ReportHealth(false, "GET /health: 503")
	v = web.waitFor(t, "api-0's sidecar reports failing again", v, "api-1")

	// A new controller on the same address, knowing nothing of api-0's
	// report: every version it sends is above the old ones, and it takes
	// api-0 out only once api-0's sidecar has sent its report again.
	mc.stop()
	mc = startMeshController(t, authority, mc.addr, pol, snap)
	web.waitFor(t, "after the controller restarted", v, "api-1")
	if h, reason, ok := mc.ctl.SidecarHealth("api-0"); !ok || h || reason != "GET /health: 503" {
		t.Errorf("the new controller holds %v %q %v for api-0", h, reason, ok)
	}
}
