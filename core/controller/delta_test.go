package controller

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// holder is a listener that keeps what the builds say, as a config
// server does.
type holder struct {
	configs map[string]*meshapi.ProxyConfig
}

func (h *holder) Publish(b Build) int {
	if b.Full {
		h.configs = map[string]*meshapi.ProxyConfig{}
	}
	for _, id := range b.Removed {
		delete(h.configs, id)
	}
	for id, cfg := range b.Configs {
		h.configs[id] = cfg
	}
	return len(b.Configs)
}

func deltaPolicy(variant int) *policy.Policy {
	bind := func(svc string) []policy.Binding {
		return []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": svc}}}
	}
	p := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{
			"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}, Bindings: bind("web")},
			"api": {Name: "api", Upstreams: []policy.Upstream{{Service: "db", LocalPort: 9002}}, Bindings: bind("api")},
			"db":  {Name: "db", Bindings: bind("db")},
		}}
	if variant%2 == 1 {
		p.Mesh.IdentityBinding = policy.BindingPermissive
	}
	return p
}

func deltaInstance(r *rand.Rand, id string) model.Instance {
	svc := []string{"web", "api", "db"}[r.IntN(3)]
	in := model.Instance{ID: id, Service: svc, Address: fmt.Sprintf("127.0.0.%d", 2+r.IntN(5)),
		Ports:    map[string]int{model.PortApp: 8080, model.PortMesh: 15001},
		Health:   []model.Health{model.HealthPassing, model.HealthCritical}[r.IntN(2)],
		Workload: map[string]string{model.WorkloadScheduler: "local", "name": svc}}
	switch r.IntN(8) {
	case 0:
		in.Service = "Not_Valid" // the registry skips it
	case 1:
		in.Ports["upstream:store"] = 24000 // undeclared
	case 2:
		in.Workload["name"] = "impostor" // unbound
	}
	return in
}

// TestRebuildFromDeltasMatchesFullCompile drives a controller with seeded
// random snapshot deltas of two adapters (with whole snapshots to resync,
// deltas from snapshots the registry never took, bad records, IDs both
// adapters report), sidecar health reports and policy changes, and checks
// after every rebuild that a listener holds exactly the configurations a
// full compilation gives, and that status's undeclared ports agree.
func TestRebuildFromDeltasMatchesFullCompile(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 5))
			reg := registry.New()
			c := New(Options{Registry: reg})
			h := &holder{}
			c.setListeners([]Listener{h})
			c.applyPolicy(deltaPolicy(0))
			snaps := map[string][]model.Instance{}
			seqs := map[string]uint64{}
			var seq uint64
			for step := range 300 {
				what := ""
				switch k := r.IntN(20); {
				case k == 0:
					c.applyPolicy(deltaPolicy(r.IntN(2)))
					what = "policy"
				case k < 4:
					id := fmt.Sprintf("i-%d", r.IntN(25))
					c.ReportHealth(id, r.IntN(2) == 0, "test")
					what = "health report of " + id
				default:
					a := []string{"local", "nomad"}[r.IntN(2)]
					prev := snaps[a]
					next := slices.Clone(prev)
					switch k := r.IntN(10); {
					case k < 4 || len(next) == 0:
						id := fmt.Sprintf("i-%d", r.IntN(25))
						if !slices.ContainsFunc(next, func(in model.Instance) bool { return in.ID == id }) {
							next = append(next, deltaInstance(r, id))
						}
					case k < 6:
						i := r.IntN(len(next))
						next = append(next[:i], next[i+1:]...)
					default:
						i := r.IntN(len(next))
						next[i] = deltaInstance(r, next[i].ID)
					}
					seq++
					s := model.Snapshot{Adapter: a, Instances: next, Seq: seq}
					what = "delta of " + a
					if seqs[a] != 0 && r.IntN(10) != 0 {
						from := seqs[a]
						if r.IntN(10) == 0 {
							from += 1000 // a snapshot the registry never took
							what = "stray delta of " + a
						}
						s.Delta = &model.SnapshotDelta{From: from}
						had := map[string]model.Instance{}
						for _, in := range prev {
							had[in.ID] = in
						}
						for _, in := range next {
							if old, ok := had[in.ID]; !ok || !old.Equal(in) {
								s.Delta.Upserts = append(s.Delta.Upserts, in)
							}
							delete(had, in.ID)
						}
						for id := range had {
							s.Delta.Removed = append(s.Delta.Removed, id)
						}
					} else {
						what = "whole snapshot of " + a
					}
					snaps[a], seqs[a] = next, seq
					c.applySnapshot(s)
				}
				c.rebuild()
				entries := reg.Entries()
				for i := range entries {
					if healthy, _, ok := c.SidecarHealth(entries[i].Instance.ID); ok && !healthy {
						entries[i].Instance.Health = model.HealthCritical
					}
				}
				want := compile.Compile(c.Policy(), entries)
				if len(h.configs) != len(want) {
					t.Fatalf("step %d (%s): the listener holds %d configurations, a full compilation gives %d", step, what, len(h.configs), len(want))
				}
				for id, w := range want {
					if got := h.configs[id]; !proto.Equal(got, w) {
						t.Fatalf("step %d (%s): %s = %v\nwant %v", step, what, id, got, w)
					}
				}
				if got, want := c.inc.undeclared(), compile.UndeclaredDrops(c.Policy(), entries); !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d (%s): undeclared = %v, want %v", step, what, got, want)
				}
			}
			if c.inc.partial < 150 {
				t.Fatalf("only %d of 300 builds looked at the changed records only: the test did not test them", c.inc.partial)
			}
		})
	}
}
