package controller

import (
	"bytes"
	"fmt"
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
	got, counts := c.Dropped()
	if counts[model.ReasonNoMeshPort] != 2 || counts[model.ReasonNoServiceName] != 1 || counts[model.ReasonUnnamedPort] != 1 || counts[model.ReasonUndeclaredUpstream] != 1 {
		t.Errorf("counts = %v", counts)
	}
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
	if got, _ := c.Dropped(); len(got) != len(want)+1 {
		n := len(got)
		t.Errorf("%d dropped after nomad's snapshot, want %d", n, len(want)+1)
	}
	web.Ports = map[string]int{"mesh": 15001, "upstream:api": 9001}
	c.applySnapshot(model.Snapshot{Adapter: "mesos", Instances: []model.Instance{web}})
	c.rebuild()
	if got, _ := c.Dropped(); len(got) != 1 || got[0].Adapter != "nomad" || got[0].Reason != "mine" {
		t.Errorf("Dropped after clean snapshots = %+v, want only nomad's", got)
	}
}

// However many records an adapter drops, every one is counted and the list
// stays bounded.
func TestDroppedListIsBounded(t *testing.T) {
	c := New(Options{Registry: registry.New(), Logger: slog.New(slog.DiscardHandler)})
	var drops []model.Dropped
	for i := range MaxDroppedListed * 3 {
		drops = append(drops, model.Dropped{Instance: fmt.Sprintf("task-%06d", i), Reason: model.ReasonNoMeshPort, Detail: "no mesh port"})
	}
	c.applySnapshot(model.Snapshot{Adapter: "mesos", Dropped: drops})
	listed, counts := c.Dropped()
	if len(listed) != MaxDroppedListed || counts[model.ReasonNoMeshPort] != MaxDroppedListed*3 {
		t.Errorf("listed %d, counted %v; want %d listed and %d counted", len(listed), counts, MaxDroppedListed, MaxDroppedListed*3)
	}
}
