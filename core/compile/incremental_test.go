package compile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// randServices are the services of the random meshes: "c" calls "a" and
// "b", "b" calls "a" (whose route mirrors to "m"), "x" is in namespace
// shop, "lonely" has no service block, "gw" runs the ingress gateway
// (routes to "a", to "x", and one of its own mirroring to "m").
var randServices = []string{"a", "b", "c", "m", "x", "lonely", "gw"}

// randPolicy is one of a few policies, chosen by variant: strict or
// permissive binding, with or without the mirror, with or without
// subsets, and intentions that differ.
func randPolicy(variant int) *policy.Policy {
	p := &policy.Policy{
		Mesh:     policy.Mesh{TrustDomain: "weft.local", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{},
		Intentions: []policy.Intention{
			{Source: "c", Destination: "a", Action: policy.Allow},
			{Source: "b", Destination: "a", Action: policy.Allow},
		},
	}
	if variant%2 == 1 {
		p.Mesh.IdentityBinding = policy.BindingPermissive
		p.Intentions = append(p.Intentions, policy.Intention{Source: policy.Wildcard, Destination: "x", Action: policy.Allow})
	}
	aRoutes := []policy.Route{{Name: "all"}}
	if variant%3 != 2 {
		aRoutes[0].Mirror = &policy.Mirror{Service: "m", Percent: 10}
	}
	var subsets []policy.Subset
	if variant%4 < 2 {
		subsets = []policy.Subset{{Name: "v1", Meta: map[string]string{"version": "1"}}, {Name: "blue", Tags: []string{"blue"}}}
	}
	p.Services["a"] = policy.Service{Name: "a", Protocol: policy.HTTP, Routes: aRoutes, Subsets: subsets, Bindings: localBinding("a")}
	p.Services["b"] = policy.Service{Name: "b", Protocol: policy.HTTP, Bindings: localBinding("b"),
		Upstreams: []policy.Upstream{{Service: "a", LocalPort: 9001}}}
	p.Services["c"] = policy.Service{Name: "c", Protocol: policy.TCP, Bindings: localBinding("c"),
		Upstreams: []policy.Upstream{{Service: "a", LocalPort: 9001}, {Service: "b", LocalPort: 9002}, {Service: "x", LocalPort: 9003}}}
	p.Services["m"] = policy.Service{Name: "m", Protocol: policy.HTTP, Bindings: localBinding("m")}
	p.Services["x"] = policy.Service{Name: "x", Namespace: "shop", Protocol: policy.GRPC, Bindings: localBinding("x")}
	p.Services["gw"] = policy.Service{Name: "gw", Bindings: localBinding("gw")}
	if variant%5 != 4 {
		own := &policy.Route{Name: "copy", Mirror: &policy.Mirror{Service: "m", Percent: 5}}
		p.Gateways = map[string]policy.Gateway{"g": {Name: "g", Service: "gw", Listeners: []policy.GatewayListener{{
			Name: "web", Port: 8443, Protocol: policy.GatewayHTTP, Routes: []policy.GatewayRoute{
				{Name: "a", Hosts: []string{"a.example.com"}, Service: "a"},
				{Name: "copy", Hosts: []string{"b.example.com"}, Service: "b", Route: own},
				{Name: "x", Service: "x"},
			},
		}}}}
	}
	return p
}

// randInstance is instance id of adapter with random contents: service,
// namespace, address, ports, health, metadata, tags, workload.
func randInstance(r *rand.Rand, id string) model.Instance {
	svc := randServices[r.IntN(len(randServices))]
	in := model.Instance{
		ID: id, Service: svc, Address: fmt.Sprintf("127.0.0.%d", 2+r.IntN(5)),
		Ports:    map[string]int{model.PortApp: 8080, model.PortMesh: 15000 + r.IntN(3)},
		Health:   []model.Health{model.HealthPassing, model.HealthCritical, model.HealthUnknown, model.HealthWarning}[r.IntN(4)],
		Workload: map[string]string{model.WorkloadScheduler: "local", "name": svc},
	}
	if svc == "x" || r.IntN(8) == 0 {
		in.Namespace = "shop"
	}
	if r.IntN(3) == 0 {
		in.Meta = map[string]string{"version": fmt.Sprint(r.IntN(2))}
	}
	if r.IntN(3) == 0 {
		in.Tags = []string{"blue"}
	}
	if r.IntN(5) == 0 {
		in.Workload["name"] = "impostor" // unbound
	}
	if r.IntN(6) == 0 {
		in.Ports[UpstreamPortPrefix+"a"] = 24000 + r.IntN(2)
	}
	return in
}

// TestCompilerMatchesCompile drives a Compiler through seeded random
// sequences of registry and policy changes and checks, at every step,
// that the configurations a consumer holds after applying each Delta are
// Compile's, byte for byte (deterministic encoding), and that Unbound
// agrees. "hand-built entries" strips the registry's revisions, so
// changes are found by comparing entries whole; "changed records only"
// hands UpdateChanged only what the registry's journal names (Update
// with every entry when the policy changed).
func TestCompilerMatchesCompile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stripRev bool
		changes  bool
	}{{"registry revisions", false, false}, {"hand-built entries", true, false}, {"changed records only", false, true}} {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%s/seed=%d", tc.name, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 12))
				reg := registry.New()
				snaps := map[string][]model.Instance{"local": nil, "nomad": nil}
				p := randPolicy(0)
				c := NewCompiler()
				held := map[string]*meshapi.ProxyConfig{}
				var cursor uint64
				partial := 0
				for step := range 300 {
					what := ""
					switch n := r.IntN(20); {
					case n == 0:
						p = randPolicy(r.IntN(8))
						what = "new policy"
					case n == 1:
						p = randPolicy(0) // same content, new value
						what = "same policy again"
					default:
						a := []string{"local", "nomad"}[r.IntN(2)]
						ins := slices.Clone(snaps[a])
						switch k := r.IntN(10); {
						case k < 4 || len(ins) == 0: // add (an ID may be the other adapter's: the registry skips it)
							ins = append(ins, randInstance(r, fmt.Sprintf("i-%d", r.IntN(40))))
						case k < 6: // remove
							i := r.IntN(len(ins))
							ins = append(ins[:i], ins[i+1:]...)
						case k < 9: // change one
							i := r.IntN(len(ins))
							ins[i] = randInstance(r, ins[i].ID)
						default: // the same snapshot again
						}
						snaps[a] = ins
						reg.Update(model.Snapshot{Adapter: a, Instances: ins})
						what = "snapshot of " + a
					}
					entries := reg.Entries()
					if tc.stripRev {
						for i := range entries {
							entries[i].Rev = 0
						}
					}
					var d Delta
					keys, rev, ok := reg.ChangedSince(cursor)
					cursor = rev
					if tc.changes && ok {
						var changed []registry.Entry
						var removed []registry.Key
						for _, k := range keys {
							if e, ok := reg.Get(k); ok {
								changed = append(changed, e)
							} else {
								removed = append(removed, k)
							}
						}
						d, ok = c.UpdateChanged(p, changed, removed)
						if ok {
							partial++
						}
					}
					if !tc.changes || !ok {
						d = c.Update(p, entries)
					}
					for _, id := range d.Removed {
						if _, ok := d.Changed[id]; ok {
							t.Fatalf("step %d (%s): %s is both changed and removed", step, what, id)
						}
						delete(held, id)
					}
					for id, cfg := range d.Changed {
						held[id] = cfg
					}
					want := Compile(p, entries)
					if err := sameConfigs(held, want); err != nil {
						t.Fatalf("step %d (%s): configurations after the delta differ from Compile's: %v", step, what, err)
					}
					if err := sameConfigs(c.Configs(), want); err != nil {
						t.Fatalf("step %d (%s): Configs differs from Compile's: %v", step, what, err)
					}
					if got, want := c.Unbound(), Unbound(p, entries); !reflect.DeepEqual(got, want) {
						t.Fatalf("step %d (%s): Unbound = %v, want %v", step, what, got, want)
					}
					if c.Len() != len(want) {
						t.Fatalf("step %d (%s): Len = %d, want %d", step, what, c.Len(), len(want))
					}
					if got, want := c.Undeclared(), UndeclaredDrops(p, entries); !reflect.DeepEqual(got, want) {
						t.Fatalf("step %d (%s): Undeclared = %v, want %v", step, what, got, want)
					}
				}
				if tc.changes && partial < 200 {
					t.Fatalf("only %d of 300 steps compiled the changed records only: the test did not test UpdateChanged", partial)
				}
			})
		}
	}
}

func sameConfigs(got, want map[string]*meshapi.ProxyConfig) error {
	var ids []string
	for id := range want {
		ids = append(ids, id)
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			return fmt.Errorf("%s is held but Compile has no configuration for it", id)
		}
	}
	sort.Strings(ids)
	enc := proto.MarshalOptions{Deterministic: true}
	for _, id := range ids {
		g, ok := got[id]
		if !ok {
			return fmt.Errorf("%s: missing", id)
		}
		gb, err1 := enc.Marshal(g)
		wb, err2 := enc.Marshal(want[id])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%s: encoding: %v %v", id, err1, err2)
		}
		if !bytes.Equal(gb, wb) {
			return fmt.Errorf("%s:\n got %v\nwant %v", id, g, want[id])
		}
	}
	return nil
}

// TestCompilerCompilesOnlyWhatChanged checks what each kind of change
// compiles again: an instance's own configuration and those of the
// callers whose upstreams (or a route's mirror) hold its service; a
// policy change compiles everything.
func TestCompilerCompilesOnlyWhatChanged(t *testing.T) {
	base := func() []model.Instance {
		var ins []model.Instance
		for _, s := range []struct {
			svc string
			n   int
		}{{"a", 2}, {"b", 2}, {"c", 1}, {"m", 1}, {"lonely", 1}} {
			for i := range s.n {
				ins = append(ins, model.Instance{ID: fmt.Sprintf("%s-%d", s.svc, i), Service: s.svc, Address: "127.0.0.2",
					Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 15001}, Health: model.HealthPassing,
					Workload: map[string]string{model.WorkloadScheduler: "local", "name": s.svc}})
			}
		}
		return ins
	}
	all := []string{"a-0", "a-1", "b-0", "b-1", "c-0", "lonely-0", "m-0"}
	tests := []struct {
		name        string
		change      func(ins []model.Instance) []model.Instance
		newPolicy   bool
		wantChanged []string
		wantRemoved []string
	}{
		{name: "nothing", change: func(ins []model.Instance) []model.Instance { return ins }},
		{
			name: "an endpoint of a moves: a-0 and a's callers b and c",
			change: func(ins []model.Instance) []model.Instance {
				ins[0].Ports = map[string]int{model.PortApp: 8080, model.PortMesh: 15002}
				return ins
			},
			wantChanged: []string{"a-0", "b-0", "b-1", "c-0"},
		},
		{
			name:        "an endpoint of b goes critical: b-1 and b's caller c",
			change:      func(ins []model.Instance) []model.Instance { ins[3].Health = model.HealthCritical; return ins },
			wantChanged: []string{"b-1", "c-0"},
		},
		{
			name:        "the mirror's instance changes: the callers of a, whose route mirrors to m",
			change:      func(ins []model.Instance) []model.Instance { ins[5].Address = "127.0.0.9"; return ins },
			wantChanged: []string{"b-0", "b-1", "c-0", "m-0"},
		},
		{
			name:        "a service nobody calls: only itself",
			change:      func(ins []model.Instance) []model.Instance { ins[6].Address = "127.0.0.9"; return ins },
			wantChanged: []string{"lonely-0"},
		},
		{
			name:        "an instance of a leaves",
			change:      func(ins []model.Instance) []model.Instance { return slices.Delete(ins, 1, 2) },
			wantChanged: []string{"b-0", "b-1", "c-0"},
			wantRemoved: []string{"a-1"},
		},
		{
			name: "an unbound instance arrives: itself only (it is in no endpoint set)",
			change: func(ins []model.Instance) []model.Instance {
				in := ins[0]
				in.ID = "a-9"
				in.Workload = map[string]string{"name": "x"}
				return append(ins, in)
			},
			wantChanged: []string{"a-9"},
		},
		{
			name:        "a new policy: everything",
			change:      func(ins []model.Instance) []model.Instance { return ins },
			newPolicy:   true,
			wantChanged: all,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.New()
			p := randPolicy(0)
			c := NewCompiler()
			reg.Update(model.Snapshot{Adapter: "local", Instances: base()})
			if d := c.Update(p, reg.Entries()); len(d.Changed) != len(all) || len(d.Removed) != 0 {
				t.Fatalf("first Update: %d changed, removed %v; want %d and none", len(d.Changed), d.Removed, len(all))
			}
			reg.Update(model.Snapshot{Adapter: "local", Instances: tc.change(base())})
			if tc.newPolicy {
				p = randPolicy(0)
			}
			d := c.Update(p, reg.Entries())
			var got []string
			for id := range d.Changed {
				got = append(got, id)
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.wantChanged) || !slices.Equal(d.Removed, tc.wantRemoved) {
				t.Errorf("changed %v, removed %v; want %v, %v", got, d.Removed, tc.wantChanged, tc.wantRemoved)
			}
			if err := sameConfigs(c.Configs(), Compile(p, reg.Entries())); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCompilerUnsortedEntries: entries in any order compile the same.
func TestCompilerUnsortedEntries(t *testing.T) {
	entries := []registry.Entry{
		entry("frontend-0", "frontend", "127.0.0.2", model.HealthPassing),
		entry("api-1", "api", "127.0.0.4", model.HealthPassing),
		entry("api-0", "api", "127.0.0.3", model.HealthPassing),
	}
	c := NewCompiler()
	p := demoPolicy()
	c.Update(p, entries)
	if err := sameConfigs(c.Configs(), Compile(p, entries)); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(entries)
	entries[0].Instance.Address = "127.0.0.7"
	d := c.Update(p, entries)
	if _, ok := d.Changed["frontend-0"]; !ok {
		t.Errorf("changed %v: want frontend-0, whose upstream's endpoint moved", d.Changed)
	}
	if err := sameConfigs(c.Configs(), Compile(p, entries)); err != nil {
		t.Fatal(err)
	}
}

// TestUnboundSortedOnlyWhenChanged: the sorted unbound list is kept when
// a change leaves it as it was (an unbound instance's port moved), and
// sorted again when it changes.
func TestUnboundSortedOnlyWhenChanged(t *testing.T) {
	p := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "weft.local", IdentityBinding: policy.BindingPermissive},
		Services: map[string]policy.Service{"web": {Name: "web", Protocol: policy.HTTP, Bindings: localBinding("web")}}}
	inst := func(id, job string, port int) model.Instance {
		return model.Instance{ID: id, Service: "web", Address: "127.0.0.1", Health: model.HealthPassing,
			Ports: map[string]int{model.PortMesh: port}, Workload: map[string]string{"job": job}}
	}
	steps := []struct {
		name string
		ins  []model.Instance
		kept bool // the sorted list of the step before is still in force
	}{
		{"two unbound", []model.Instance{inst("a", "other", 1), inst("b", "other", 2)}, false},
		{"a port of one moved", []model.Instance{inst("a", "other", 9), inst("b", "other", 2)}, true},
		{"a third, unbound", []model.Instance{inst("a", "other", 9), inst("b", "other", 2), inst("c", "other", 3)}, false},
		{"one gone", []model.Instance{inst("a", "other", 9), inst("c", "other", 3)}, false},
		{"another workload, still unbound", []model.Instance{inst("a", "another", 9), inst("c", "other", 3)}, false},
	}
	reg := registry.New()
	c := NewCompiler()
	for i, st := range steps {
		reg.Update(model.Snapshot{Adapter: "nomad", Instances: st.ins})
		entries := reg.Entries()
		before := c.skipped
		c.Update(p, entries)
		if i > 0 && (c.skipped != nil && before != nil && &c.skipped[0] == &before[0]) != st.kept {
			t.Errorf("%s: sorted list kept = %v, want %v", st.name, !st.kept, st.kept)
		}
		if got, want := c.Unbound(), Unbound(p, entries); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Unbound = %v, want %v", st.name, got, want)
		}
	}
}
