package controller

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// TestRebuildIncremental: after every rebuild the config server holds
// exactly what a full compilation gives, though rebuild hands it only the
// delta; listeners set after earlier builds get every configuration.
func TestRebuildIncremental(t *testing.T) {
	reg := registry.New()
	c := New(Options{Registry: reg})
	srv := meshserver.New(meshserver.Options{Workloads: c})
	inst := func(id, svc, addr string) model.Instance {
		return model.Instance{ID: id, Service: svc, Address: addr, Ports: map[string]int{"app": 8080, "mesh": 15001},
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": svc}}
	}
	bind := func(svc string) []policy.Binding {
		return []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": svc}}}
	}
	pol := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{
			"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}, Bindings: bind("web")},
			"api": {Name: "api", Bindings: bind("api")},
		}}
	check := func(step string) {
		t.Helper()
		want := compile.Compile(c.Policy(), reg.Entries())
		for id, w := range want {
			got, _, ok := srv.Config(id)
			if !ok {
				t.Fatalf("%s: the server has no configuration for %s", step, id)
			}
			w.Trust = got.Trust // the server stamps the trust bundle
			if !proto.Equal(got, w) {
				t.Fatalf("%s: %s = %v, want %v", step, id, got, w)
			}
		}
		for _, id := range []string{"web-0", "web-1", "api-0", "api-1", "api-2"} {
			if _, _, ok := srv.Config(id); ok != (want[id] != nil) {
				t.Fatalf("%s: the server has a configuration for %s: %v; compile: %v", step, id, ok, want[id] != nil)
			}
		}
	}
	c.applyPolicy(pol)
	reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("web-0", "web", "127.0.0.2"), inst("api-0", "api", "127.0.0.3")}})
	c.rebuild() // no listener yet
	c.setListeners([]Listener{ConfigServer(srv)})
	c.rebuild()
	check("server set after the first build")
	reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("web-0", "web", "127.0.0.2"), inst("api-0", "api", "127.0.0.3"), inst("api-1", "api", "127.0.0.4")}})
	c.rebuild()
	check("an api instance added")
	reg.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("web-0", "web", "127.0.0.2"), inst("api-1", "api", "127.0.0.5"), inst("web-1", "web", "127.0.0.6")}})
	c.rebuild()
	check("api-0 gone, api-1 moved, web-1 added")
	pol2 := *pol
	pol2.Mesh.TrustDomain = "example.net"
	c.applyPolicy(&pol2)
	c.rebuild()
	check("a new policy")
}
