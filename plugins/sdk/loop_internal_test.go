package sdk

import (
	"testing"

	"github.com/weftmesh/weft/core/model"
)

// TestSameEvent: the loop's dedupe sees every difference an adapter's
// snapshot can have, and none where there is none.
func TestSameEvent(t *testing.T) {
	in := func(id string, port int) model.Instance {
		return model.Instance{ID: id, Service: "web", Address: "127.0.0.1", Ports: map[string]int{"mesh": port}}
	}
	base := WatchEvent{
		Snapshot:    Snapshot{Instances: []model.Instance{in("a", 1), in("b", 2)}},
		Diagnostics: []Diagnostic{{Severity: SeverityWarning, Summary: "skipped", Instance: "c", Reason: ReasonInvalidRecord}},
	}
	withMeta := base
	withMeta.Snapshot.Instances = []model.Instance{in("a", 1), in("b", 2)}
	withMeta.Snapshot.Instances[1].Meta = map[string]string{}
	tests := []struct {
		name  string
		other WatchEvent
		same  bool
	}{
		{"the same", WatchEvent{Snapshot: Snapshot{Instances: []model.Instance{in("a", 1), in("b", 2)}}, Diagnostics: base.Diagnostics}, true},
		{"an empty map for a nil one", withMeta, true},
		{"a port moved", WatchEvent{Snapshot: Snapshot{Instances: []model.Instance{in("a", 1), in("b", 3)}}, Diagnostics: base.Diagnostics}, false},
		{"an instance fewer", WatchEvent{Snapshot: Snapshot{Instances: []model.Instance{in("a", 1)}}, Diagnostics: base.Diagnostics}, false},
		{"another order", WatchEvent{Snapshot: Snapshot{Instances: []model.Instance{in("b", 2), in("a", 1)}}, Diagnostics: base.Diagnostics}, false},
		{"no diagnostics", WatchEvent{Snapshot: base.Snapshot}, false},
		{"another diagnostic", WatchEvent{Snapshot: base.Snapshot, Diagnostics: []Diagnostic{{Severity: SeverityError, Summary: "skipped", Instance: "c", Reason: ReasonInvalidRecord}}}, false},
		{"another adapter", WatchEvent{Snapshot: Snapshot{Adapter: "x", Instances: base.Snapshot.Instances}, Diagnostics: base.Diagnostics}, false},
		{"dropped", WatchEvent{Snapshot: Snapshot{Instances: base.Snapshot.Instances, Dropped: []model.Dropped{{Instance: "c"}}}, Diagnostics: base.Diagnostics}, false},
	}
	for _, tt := range tests {
		if got := sameEvent(base, tt.other); got != tt.same {
			t.Errorf("%s: sameEvent = %v, want %v", tt.name, got, tt.same)
		}
		if got := sameEvent(tt.other, base); got != tt.same {
			t.Errorf("%s, swapped: sameEvent = %v, want %v", tt.name, got, tt.same)
		}
	}
}
