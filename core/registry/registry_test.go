package registry

import (
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/model"
)

func inst(id, svc string) model.Instance {
	return model.Instance{ID: id, Service: svc, Address: "127.0.0.2", Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 15001}}
}

func TestUpdate(t *testing.T) {
	bad := inst("bad-0", "Bad_Name")
	noMesh := inst("nomesh-0", "api")
	delete(noMesh.Ports, model.PortMesh)
	badAddr := inst("addr-0", "api")
	badAddr.Address = "localhost:80"
	turnedBad := inst("b", "api")
	turnedBad.Address = "localhost:80"

	tests := []struct {
		name         string
		prior        []model.Snapshot
		snap         model.Snapshot
		wantIDs      []string
		wantProblems []string
		// wantReasons, if set, are the problems' reasons, in order.
		wantReasons []string
		wantChanged bool
	}{
		{
			name:        "all good",
			snap:        model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("b", "api"), inst("a", "api")}},
			wantIDs:     []string{"a", "b"},
			wantChanged: true,
		},
		{
			name:         "bad records are skipped, good ones kept",
			snap:         model.Snapshot{Adapter: "local", Instances: []model.Instance{bad, inst("a", "api"), noMesh, badAddr}},
			wantIDs:      []string{"a"},
			wantProblems: []string{"not a DNS label", `no "mesh" port`, "not an IP address"},
			wantReasons:  []string{model.ReasonNoServiceName, model.ReasonNoMeshPort, model.ReasonInvalidRecord},
			wantChanged:  true,
		},
		{
			name: "a port without a name is a bad record",
			snap: model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api"),
				{ID: "u", Service: "api", Address: "127.0.0.1", Ports: map[string]int{model.PortMesh: 21000, "": 8080}}}},
			wantIDs:      []string{"a"},
			wantProblems: []string{"port 8080 has no name"},
			wantReasons:  []string{model.ReasonUnnamedPort},
			wantChanged:  true,
		},
		{
			name:         "duplicate ID within a snapshot",
			snap:         model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api"), inst("a", "store")}},
			wantIDs:      []string{"a"},
			wantProblems: []string{"appears twice"},
			wantReasons:  []string{model.ReasonDuplicateID},
			wantChanged:  true,
		},
		{
			name:         "ID taken by another adapter",
			prior:        []model.Snapshot{{Adapter: "nomad", Instances: []model.Instance{inst("a", "api")}}},
			snap:         model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api"), inst("b", "api")}},
			wantIDs:      []string{"b", "a"}, // local/b, then nomad/a
			wantProblems: []string{"already reported by adapter nomad"},
			wantChanged:  true,
		},
		{
			name:        "unchanged snapshot reports no change",
			prior:       []model.Snapshot{{Adapter: "local", Instances: []model.Instance{inst("a", "api")}}},
			snap:        model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api")}},
			wantIDs:     []string{"a"},
			wantChanged: false,
		},
		{
			name:         "a record that turns bad is skipped, not kept from before",
			prior:        []model.Snapshot{{Adapter: "local", Instances: []model.Instance{inst("a", "api"), inst("b", "api")}}},
			snap:         model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api"), turnedBad}},
			wantIDs:      []string{"a"},
			wantProblems: []string{"not an IP address"},
			wantChanged:  true,
		},
		{
			name:        "empty snapshot replaces the old one",
			prior:       []model.Snapshot{{Adapter: "local", Instances: []model.Instance{inst("a", "api")}}},
			snap:        model.Snapshot{Adapter: "local"},
			wantIDs:     nil,
			wantChanged: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			for _, p := range tc.prior {
				r.Update(p)
			}
			changed, problems := r.Update(tc.snap)
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			var ids []string
			for _, e := range r.Entries() {
				ids = append(ids, e.Instance.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") {
				t.Errorf("ids = %v, want %v", ids, tc.wantIDs)
			}
			if len(problems) != len(tc.wantProblems) {
				t.Fatalf("problems = %v, want %d", problems, len(tc.wantProblems))
			}
			for i, p := range problems {
				if tc.wantReasons != nil && p.Reason != tc.wantReasons[i] {
					t.Errorf("problem %d reason = %q, want %q", i, p.Reason, tc.wantReasons[i])
				}
				if d := p.Dropped(); d.Adapter != p.Adapter || d.Instance != p.ID || d.Reason != p.Reason || d.Detail != p.Err.Error() {
					t.Errorf("problem %d as Dropped = %+v", i, d)
				}
				if !strings.Contains(p.Error(), tc.wantProblems[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, p.Error(), tc.wantProblems[i])
				}
			}
		})
	}
}

func TestNamespaceDefaulted(t *testing.T) {
	r := New()
	r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api")}})
	got, ok := r.Lookup("local", "a")
	if !ok || got.Namespace != model.DefaultNamespace {
		t.Errorf("Lookup = %+v, %v; want namespace %q", got, ok, model.DefaultNamespace)
	}
	if _, ok := r.Find("missing"); ok {
		t.Error("Find found a missing instance")
	}
}

// TestRevisions: a record keeps its revision while the adapter reports it
// unchanged, and a new or changed record gets a new one, which is what
// the incremental compiler relies on to skip unchanged records.
func TestRevisions(t *testing.T) {
	revs := func(r *Registry) map[string]uint64 {
		out := map[string]uint64{}
		for _, e := range r.Entries() {
			out[e.Adapter+"/"+e.Instance.ID] = e.Rev
		}
		return out
	}
	r := New()
	r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api"), inst("b", "api")}})
	r.Update(model.Snapshot{Adapter: "nomad", Instances: []model.Instance{inst("n", "api")}})
	first := revs(r)
	if first["local/a"] == 0 || first["local/a"] != first["local/b"] || first["nomad/n"] == first["local/a"] {
		t.Fatalf("revisions after two snapshots = %v: want a and b equal and non-zero, n another", first)
	}
	moved := inst("b", "api")
	moved.Ports[model.PortMesh] = 15002
	if changed, _ := r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{moved, inst("a", "api"), inst("c", "api")}}); !changed {
		t.Fatal("a changed snapshot reported no change")
	}
	second := revs(r)
	if second["local/a"] != first["local/a"] || second["nomad/n"] != first["nomad/n"] {
		t.Errorf("unchanged records got new revisions: %v -> %v", first, second)
	}
	if second["local/b"] <= first["nomad/n"] || second["local/c"] != second["local/b"] {
		t.Errorf("changed b and new c: revisions %v -> %v; want both the same, newer than every earlier one", first, second)
	}
	if changed, _ := r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("c", "api"), moved, inst("a", "api")}}); changed {
		t.Error("the same snapshot in another order reported a change")
	}
	if e, ok := r.Find("b"); !ok || e.Rev != second["local/b"] {
		t.Errorf("Find(b) = %+v, %v; want revision %d", e, ok, second["local/b"])
	}
	// The same IDs, one record changed.
	critical := inst("c", "api")
	critical.Health = model.HealthCritical
	if changed, _ := r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api"), moved, critical}}); !changed {
		t.Fatal("a changed record reported no change")
	}
	third := revs(r)
	if third["local/a"] != second["local/a"] || third["local/b"] != second["local/b"] || third["local/c"] <= second["local/c"] {
		t.Errorf("only c changed: revisions %v -> %v", second, third)
	}
	if got, ok := r.Lookup("local", "c"); !ok || got.Health != model.HealthCritical {
		t.Errorf("Lookup(c) = %+v, %v; want it critical", got, ok)
	}
}

// TestSameInstanceSeesEveryField changes each field of model.Instance in
// turn and wants sameInstance to see it: a field added to the model and
// not to sameInstance would let a changed record keep its revision, and
// the incremental compiler would not compile it again.
func TestSameInstanceSeesEveryField(t *testing.T) {
	base := inst("a", "api")
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			changed := inst("a", "api")
			v := reflect.ValueOf(&changed).Elem().Field(i)
			switch f.Type.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Map: // the same entries and one more
				m := reflect.MakeMap(f.Type)
				for _, k := range v.MapKeys() {
					m.SetMapIndex(k, v.MapIndex(k))
				}
				m.SetMapIndex(reflect.ValueOf("added-by-test").Convert(f.Type.Key()), reflect.New(f.Type.Elem()).Elem())
				v.Set(m)
			case reflect.Slice:
				v.Set(reflect.Append(v, reflect.New(f.Type.Elem()).Elem()))
			default:
				t.Fatalf("model.Instance.%s is a %s: teach sameInstance (and this test) to compare it", f.Name, f.Type)
			}
			if reflect.DeepEqual(base, changed) {
				t.Fatalf("the test did not change %s", f.Name)
			}
			if sameInstance(base, changed) || sameInstance(changed, base) {
				t.Errorf("sameInstance does not see a change of %s", f.Name)
			}
		})
	}
}

// TestIDOwnedByOneAdapter: an instance ID belongs to the adapter that
// reported it first, for as long as it keeps reporting it, changed or not;
// then to whichever reports it next.
func TestIDOwnedByOneAdapter(t *testing.T) {
	moved := inst("a", "web")
	moved.Ports = map[string]int{model.PortApp: 8080, model.PortMesh: 15002}
	steps := []struct {
		name    string
		adapter string
		ins     []model.Instance
		refused bool   // the snapshot's record of a is refused
		owner   string // who holds a afterwards ("" for nobody)
	}{
		{"local reports a", "local", []model.Instance{inst("a", "web")}, false, "local"},
		{"nomad reports a too: refused", "nomad", []model.Instance{inst("a", "web")}, true, "local"},
		{"local moves a: still its own", "local", []model.Instance{moved}, false, "local"},
		{"nomad again: refused", "nomad", []model.Instance{inst("a", "web")}, true, "local"},
		{"local drops a", "local", nil, false, ""},
		{"nomad reports a: now its own", "nomad", []model.Instance{inst("a", "web")}, false, "nomad"},
		{"local reports a: refused", "local", []model.Instance{inst("a", "web")}, true, "nomad"},
		{"nomad reports a unchanged: still its own", "nomad", []model.Instance{inst("a", "web")}, false, "nomad"},
	}
	r := New()
	for _, st := range steps {
		_, problems := r.Update(model.Snapshot{Adapter: st.adapter, Instances: st.ins})
		refused := len(problems) == 1 && strings.Contains(problems[0].Error(), "already reported by adapter")
		if refused != st.refused || (!st.refused && len(problems) > 0) {
			t.Errorf("%s: problems %v, want refused %v", st.name, problems, st.refused)
		}
		owner := ""
		if e, ok := r.Find("a"); ok {
			owner = e.Adapter
		}
		if owner != st.owner {
			t.Errorf("%s: a is %q's, want %q's", st.name, owner, st.owner)
		}
	}
}
