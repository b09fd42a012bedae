package compile_test

import (
	"fmt"
	"testing"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// benchMesh is services x perService instances; every service calls the
// next `upstreams` services in a ring (the control-plane benchmark's shape).
func benchMesh(services, perService, upstreams int) (*policy.Policy, []registry.Entry) {
	p := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "bench.weft", DefaultAction: policy.Deny}, Services: map[string]policy.Service{},
		Intentions: []policy.Intention{{Source: policy.Wildcard, Destination: policy.Wildcard, Action: policy.Allow}}}
	var ins []model.Instance
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		var ups []policy.Upstream
		for d := 1; d <= upstreams; d++ {
			ups = append(ups, policy.Upstream{Service: fmt.Sprintf("svc-%d", (i+d)%services), LocalPort: 30000 + d})
		}
		p.Services[name] = policy.Service{Name: name, Protocol: policy.HTTP, Upstreams: ups,
			Bindings: []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": name}}}}
		for k := range perService {
			n := i*perService + k
			ins = append(ins, model.Instance{ID: fmt.Sprintf("%s-%d", name, k), Service: name, Health: model.HealthPassing,
				Workload: map[string]string{model.WorkloadScheduler: "local", "name": name},
				Address:  fmt.Sprintf("127.%d.%d.%d", 1+n/62500, n/250%250, 1+n%250), Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 20000}})
		}
	}
	r := registry.New()
	r.Update(model.Snapshot{Adapter: "bench", Instances: ins})
	return p, r.Entries()
}

// BenchmarkCompile compiles every instance's config. Compile used to scan
// all entries for every upstream of every instance (instances x upstreams x
// entries: about 7 s at 10,000 instances with 10 upstreams each); it now
// builds each service's endpoint list once per Compile and shares it:
// 42 ms at 10,000 instances (go test -run '^$' -bench BenchmarkCompile
// -benchtime 3x ./core/compile, 2026-11-25).
func BenchmarkCompile(b *testing.B) {
	for _, s := range []struct{ services, per, ups int }{{100, 10, 10}, {1000, 10, 10}} {
		b.Run(fmt.Sprintf("services=%d/instances=%d/upstreams=%d", s.services, s.services*s.per, s.ups), func(b *testing.B) {
			p, entries := benchMesh(s.services, s.per, s.ups)
			b.ReportAllocs()
			for b.Loop() {
				compile.Compile(p, entries)
			}
		})
	}
}

// BenchmarkCompilerUpdate is one endpoint change in the control-plane
// benchmark's mesh: an instance of one service moves, the registry takes
// the adapter's full snapshot, and the Compiler compiles again that
// instance's configuration and those of its service's callers (10
// services x 10 instances), not all 10,000.
func BenchmarkCompilerUpdate(b *testing.B) {
	for _, s := range []struct{ services, per, ups int }{{100, 10, 10}, {1000, 10, 10}} {
		b.Run(fmt.Sprintf("services=%d/instances=%d/upstreams=%d", s.services, s.services*s.per, s.ups), func(b *testing.B) {
			p, entries := benchMesh(s.services, s.per, s.ups)
			ins := make([]model.Instance, len(entries))
			for i, e := range entries {
				ins[i] = e.Instance
			}
			r := registry.New()
			r.Update(model.Snapshot{Adapter: "bench", Instances: ins})
			c := compile.NewCompiler()
			c.Update(p, r.Entries())
			b.ReportAllocs()
			k := 0
			for b.Loop() {
				in := &ins[(k*7919)%len(ins)]
				in.Ports = map[string]int{model.PortApp: 8080, model.PortMesh: 20001 + k%1000}
				r.Update(model.Snapshot{Adapter: "bench", Instances: ins})
				if d := c.Update(p, r.Entries()); len(d.Changed) != 1+s.ups*s.per {
					b.Fatalf("%d configurations compiled, want %d", len(d.Changed), 1+s.ups*s.per)
				}
				k++
			}
		})
	}
}
