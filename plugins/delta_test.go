package plugins

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/proto"
)

func deltaInstance(id string, port int) model.Instance {
	return model.Instance{ID: id, Service: "web", Address: "127.0.0.1", Health: model.HealthPassing,
		Ports: map[string]int{model.PortApp: 8080, model.PortMesh: port}}
}

// TestDeltaStream sends a stream of snapshots through deltaEncoder and
// deltaDecoder: each snapshot must come out whole (the same instances by
// ID), and be sent in full or as the delta the step says.
func TestDeltaStream(t *testing.T) {
	a, b, c := deltaInstance("a", 1), deltaInstance("b", 2), deltaInstance("c", 3)
	a2 := deltaInstance("a", 9)
	bad := model.Instance{ID: "bad", Service: "Not A Name"} // invalid: the host skips it, not the shims
	tagged := deltaInstance("b", 2)
	tagged.Tags = []string{"canary"}
	emptyMaps := deltaInstance("c", 3)
	emptyMaps.Meta, emptyMaps.Labels, emptyMaps.Tags = map[string]string{}, map[string]string{}, []string{}
	steps := []struct {
		name string
		ins  []model.Instance
		// full: sent whole; otherwise the delta's upserts and removed IDs.
		full    bool
		upserts []string
		removed []string
	}{
		{name: "the first snapshot goes whole", ins: []model.Instance{a, b, c}, full: true},
		{name: "nothing changed: an empty delta", ins: []model.Instance{a, b, c}},
		{name: "one port moved", ins: []model.Instance{a2, b, c}, upserts: []string{"a"}},
		{name: "one instance left", ins: []model.Instance{a2, c}, removed: []string{"b"}},
		{name: "one came back, a bad one arrived", ins: []model.Instance{bad, a2, b, c}, upserts: []string{"bad", "b"}},
		{name: "a tag added", ins: []model.Instance{bad, a2, tagged, c}, upserts: []string{"b"}},
		{name: "empty maps are no change", ins: []model.Instance{bad, a2, tagged, emptyMaps}},
		{name: "a duplicate ID goes whole", ins: []model.Instance{a2, a, tagged}, full: true},
		{name: "and so does the snapshot after it", ins: []model.Instance{a2, tagged}, full: true},
		{name: "every instance changed: whole", ins: []model.Instance{a, b}, full: true},
		{name: "every instance gone: a delta to nothing", ins: nil, removed: []string{"a", "b"}},
		{name: "from nothing: whole", ins: []model.Instance{c}, full: true},
	}
	var (
		enc deltaEncoder
		dec deltaDecoder
	)
	diags := []Diagnostic{{Severity: SeverityWarning, Summary: "record skipped", Instance: "x", Reason: "invalid_record"}}
	var lastSeq uint64
	for _, st := range steps {
		p := enc.encode(WatchEvent{Snapshot: model.Snapshot{Instances: st.ins}, Diagnostics: diags})
		switch d := p.GetDelta(); {
		case st.full && (p.GetSnapshot() == nil || d != nil):
			t.Errorf("%s: sent %v, want the whole snapshot", st.name, p)
		case !st.full && (p.GetSnapshot() != nil || d == nil):
			t.Errorf("%s: sent %v, want a delta", st.name, p)
		case !st.full:
			var ups []string
			for _, in := range d.GetUpserts() {
				ups = append(ups, in.GetId())
			}
			if !slices.Equal(ups, st.upserts) || !sameSet(d.GetRemoved(), st.removed) {
				t.Errorf("%s: delta upserts %v removed %v, want %v and %v", st.name, ups, d.GetRemoved(), st.upserts, st.removed)
			}
		}
		ev, err := dec.decode(p)
		if err != nil {
			t.Fatalf("%s: decode: %v", st.name, err)
		}
		if !sameInstances(ev.Snapshot.Instances, st.ins) {
			t.Errorf("%s: decoded %+v, want %+v", st.name, ev.Snapshot.Instances, st.ins)
		}
		if !slices.Equal(ev.Diagnostics, diags) {
			t.Errorf("%s: diagnostics %+v, want %+v", st.name, ev.Diagnostics, diags)
		}
		// The registry's hint: every snapshot numbered, a delta naming the
		// one before it and what it carried.
		if ev.Snapshot.Seq <= lastSeq {
			t.Errorf("%s: Seq %d after %d", st.name, ev.Snapshot.Seq, lastSeq)
		}
		switch h := ev.Snapshot.Delta; {
		case st.full && h != nil:
			t.Errorf("%s: a whole snapshot carries the delta hint %+v", st.name, h)
		case !st.full && (h == nil || h.From != lastSeq):
			t.Errorf("%s: delta hint %+v, want one from Seq %d", st.name, h, lastSeq)
		case !st.full:
			var ups []string
			for _, in := range h.Upserts {
				ups = append(ups, in.ID)
			}
			if !slices.Equal(ups, st.upserts) || !sameSet(h.Removed, st.removed) {
				t.Errorf("%s: hint upserts %v removed %v, want %v and %v", st.name, ups, h.Removed, st.upserts, st.removed)
			}
		}
		lastSeq = ev.Snapshot.Seq
	}
}

// TestDeltaDecoderHandsOnACopy: applying a delta never changes a snapshot
// already handed on.
func TestDeltaDecoderHandsOnACopy(t *testing.T) {
	var (
		enc deltaEncoder
		dec deltaDecoder
	)
	first, err := dec.decode(enc.encode(WatchEvent{Snapshot: model.Snapshot{Instances: []model.Instance{deltaInstance("a", 1), deltaInstance("b", 2), deltaInstance("c", 3)}}}))
	if err != nil {
		t.Fatal(err)
	}
	held := slices.Clone(first.Snapshot.Instances)
	if _, err := dec.decode(enc.encode(WatchEvent{Snapshot: model.Snapshot{Instances: []model.Instance{deltaInstance("a", 9), deltaInstance("c", 3)}}})); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(first.Snapshot.Instances, held, model.Instance.Equal) {
		t.Errorf("the first snapshot changed under its receiver: %+v, was %+v", first.Snapshot.Instances, held)
	}
}

// TestDeltaDecoderRefuses: a stream the decoder cannot follow is an error
// that says so, and after it only a whole snapshot is taken.
func TestDeltaDecoderRefuses(t *testing.T) {
	full := &proto.WatchEvent{Snapshot: &proto.Snapshot{Instances: []*proto.Instance{instanceToProto(deltaInstance("a", 1))}}}
	tests := []struct {
		name   string
		events []*proto.WatchEvent
		want   string // in the last event's error
	}{
		{name: "a delta before any snapshot", events: []*proto.WatchEvent{{Delta: &proto.SnapshotDelta{}}}, want: "before any full snapshot"},
		{name: "a count that differs", events: []*proto.WatchEvent{full, {Delta: &proto.SnapshotDelta{Instances: 2}}}, want: "should give 2 instances and gave 1"},
		{name: "a delta after a count that differed", events: []*proto.WatchEvent{full, {Delta: &proto.SnapshotDelta{Instances: 2}}, {Delta: &proto.SnapshotDelta{Instances: 1}}}, want: "before any full snapshot"},
		{name: "a delta after a duplicate ID", events: []*proto.WatchEvent{{Snapshot: &proto.Snapshot{Instances: []*proto.Instance{full.Snapshot.Instances[0], full.Snapshot.Instances[0]}}}, {Delta: &proto.SnapshotDelta{Instances: 2}}}, want: "duplicate instance ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dec deltaDecoder
			var err error
			for _, p := range tt.events {
				_, err = dec.decode(p)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decode = %v, want an error containing %q", err, tt.want)
			}
			if _, err := dec.decode(full); err != nil {
				t.Errorf("a whole snapshot after the error: %v", err)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// sameInstances: the same instances by ID, whatever their order.
func sameInstances(got, want []model.Instance) bool {
	byID := func(ins []model.Instance) map[string]model.Instance {
		m := map[string]model.Instance{}
		for _, in := range ins {
			m[in.ID] = in
		}
		return m
	}
	return len(got) == len(want) && maps.EqualFunc(byID(got), byID(want), model.Instance.Equal)
}
