package controller

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// Every way an instance is left out reaches Dropped, with its adapter and
// reason: what the adapter's snapshot says it skipped, what the registry
// refuses, and an upstream port the policy does not declare. A later
// snapshot without them clears them.
func TestDroppedFromEverySource(t *testing.T) {
	var log bytes.Buffer
	c := New(Options{Registry: registry.New(), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	c.applyPolicy(&policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}}}})

	web := model.Instance{ID: "web-0", Service: "web", Address: "127.0.0.2", Ports: map[string]int{"mesh": 15001, "upstream:api": 9001, "upstream:store": 9002}}
	noName := model.Instance{ID: "anon", Address: "127.0.0.3", Ports: map[string]int{"mesh": 15001}}
	unnamed := model.Instance{ID: "odd", Service: "web", Address: "127.0.0.4", Ports: map[string]int{"mesh": 15001, "": 80}}
	noMesh := model.Instance{ID: "nomesh", Service: "web", Address: "127.0.0.5", Ports: map[string]int{"app": 80}}
	c.applySnapshot(model.Snapshot{Adapter: "mesos", Instances: []model.Instance{web, noName, unnamed, noMesh},
		Dropped: []model.Dropped{{Instance: "task-7", Reason: model.ReasonNoMeshPort, Detail: "no port named mesh"}}})
	c.rebuild()

	want := map[string]string{ // instance -> reason
		"task-7": model.ReasonNoMeshPort,
		"anon":   model.ReasonNoServiceName,
		"odd":    model.ReasonUnnamedPort,
		"nomesh": model.ReasonNoMeshPort,
		"web-0":  model.ReasonUndeclaredUpstream,
	}
	got := c.Dropped()
	if len(got) != len(want) {
		t.Fatalf("Dropped = %+v, want %d", got, len(want))
	}
	for _, d := range got {
		if d.Adapter != "mesos" || want[d.Instance] != d.Reason || d.Detail == "" {
			t.Errorf("dropped %+v, want adapter mesos, reason %q and a detail", d, want[d.Instance])
		}
	}
	for _, d := range got {
		if d.Instance == "web-0" && !strings.Contains(d.Detail, `no upstream "store"`) {
			t.Errorf("undeclared upstream detail = %q, want it to name store", d.Detail)
		}
	}
	if n := strings.Count(log.String(), "upstream port ignored"); n != 1 {
		t.Errorf("undeclared upstream logged %d times, want once", n)
	}
	c.rebuild()
	if n := strings.Count(log.String(), "upstream port ignored"); n != 1 {
		t.Errorf("undeclared upstream logged %d times after a second build, want once", n)
	}

	// Another adapter's drops are its own; a clean snapshot clears them.
	c.applySnapshot(model.Snapshot{Adapter: "nomad", Dropped: []model.Dropped{{Instance: "x", Reason: "mine", Detail: "d"}}})
	if n := len(c.Dropped()); n != len(want)+1 {
		t.Errorf("%d dropped after nomad's snapshot, want %d", n, len(want)+1)
	}
	web.Ports = map[string]int{"mesh": 15001, "upstream:api": 9001}
	c.applySnapshot(model.Snapshot{Adapter: "mesos", Instances: []model.Instance{web}})
	c.rebuild()
	if got := c.Dropped(); len(got) != 1 || got[0].Adapter != "nomad" || got[0].Reason != "mine" {
		t.Errorf("Dropped after clean snapshots = %+v, want only nomad's", got)
	}
}
