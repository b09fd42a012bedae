package controller

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// changeMesh is the control-plane benchmark's shape at n instances: n/10
// services of 10 instances, each calling the next 3 services in a ring.
func changeMesh(n int) (*policy.Policy, []model.Instance) {
	services := n / 10
	p := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "bench.weft", DefaultAction: policy.Deny}, Services: map[string]policy.Service{},
		Intentions: []policy.Intention{{Source: policy.Wildcard, Destination: policy.Wildcard, Action: policy.Allow}}}
	var ins []model.Instance
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		var ups []policy.Upstream
		for d := 1; d <= 3; d++ {
			ups = append(ups, policy.Upstream{Service: fmt.Sprintf("svc-%d", (i+d)%services), LocalPort: 30000 + d})
		}
		p.Services[name] = policy.Service{Name: name, Protocol: policy.HTTP, Upstreams: ups,
			Bindings: []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": name}}}}
		for k := range 10 {
			m := i*10 + k
			ins = append(ins, model.Instance{ID: fmt.Sprintf("%s-%d", name, k), Service: name, Health: model.HealthPassing, Isolation: model.IsolationNetNS,
				Workload: map[string]string{model.WorkloadScheduler: "local", "name": name},
				Address:  fmt.Sprintf("127.%d.%d.%d", 1+m/62500, m/250%250, 1+m%250), Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 20000}})
		}
	}
	return p, ins
}

// BenchmarkOneInstanceChange is what a controller does for one instance
// that moved, from the adapter's snapshot to the config server's publish:
// the registry takes the snapshot, the compiler compiles that instance's
// configuration and its 30 callers', the config server encodes and
// versions them. "delta" snapshots carry the adapter's delta (as the
// plugin client hands them on), "whole" ones do not (the registry compares
// every record). The work should grow with the change, not with the mesh:
//
//	go test -run '^$' -bench BenchmarkOneInstanceChange -benchmem ./core/controller/
func BenchmarkOneInstanceChange(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		for _, mode := range []string{"delta", "whole"} {
			b.Run(fmt.Sprintf("instances=%d/%s", n, mode), func(b *testing.B) {
				p, ins := changeMesh(n)
				reg := registry.New()
				compiled := 0
				c := New(Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
					OnBuild: func(_, changed int) { compiled += changed }})
				srv := meshserver.New(meshserver.Options{Workloads: c})
				c.setListeners([]Listener{ConfigServer(srv)})
				c.applyPolicy(p)
				seq := uint64(1)
				c.applySnapshot(model.Snapshot{Adapter: "bench", Instances: ins, Seq: seq})
				c.rebuild()
				b.ReportAllocs()
				compiled = 0
				k := 0
				for b.Loop() {
					i := (k * 7919) % len(ins)
					ins[i].Ports = map[string]int{model.PortApp: 8080, model.PortMesh: 20001 + k%40000} // never the port it had
					s := model.Snapshot{Adapter: "bench", Instances: ins, Seq: seq + 1}
					if mode == "delta" {
						s.Delta = &model.SnapshotDelta{From: seq, Upserts: []model.Instance{ins[i]}}
					}
					seq++
					c.applySnapshot(s)
					c.rebuild()
					k++
				}
				b.ReportMetric(float64(compiled)/float64(k), "configs/op")
				if mode == "delta" && c.inc.partial < k {
					b.Fatalf("%d of %d builds compiled the change only", c.inc.partial, k)
				}
			})
		}
	}
}
