package plugins

import (
	"fmt"
	"sync/atomic"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/proto"
)

// Snapshot deltas on the wire. An adapter hands the server shim its whole
// snapshot every time (the Adapter contract does not change); when the host
// accepts deltas (WatchRequest.accepts_deltas), the shim sends the first
// snapshot of a stream in full and every later one as its changes to the
// one before: the instances added or changed, and the IDs that left. The
// client shim applies them to its copy and hands the host the whole
// snapshot again. In a snapshot of ten thousand instances where one moved,
// one instance crosses the process boundary instead of ten thousand.
//
// Both ends key instances by ID. A snapshot that holds an ID twice (the
// host skips the second record and reports it) is sent in full, and so is
// the one after it. Instance order is not kept across a delta: a changed
// instance stays where it was, a new one comes last. The host sorts them by
// ID anyway.

// deltaEncoder is the server shim's memory of the last snapshot a stream
// carried. Its zero value sends the next snapshot in full.
type deltaEncoder struct {
	last  []model.Instance // the snapshot sent last, its IDs unique
	valid bool             // false: send the next one in full
	ids   map[string]int   // scratch: position in the new snapshot, by ID
	seen  []bool           // scratch: which of the new ones last had
}

// encode turns ev into the event to send.
func (e *deltaEncoder) encode(ev WatchEvent) *proto.WatchEvent {
	ins := ev.Snapshot.Instances
	if e.ids == nil {
		e.ids = make(map[string]int, len(ins))
	}
	clear(e.ids)
	for i, in := range ins {
		if _, dup := e.ids[in.ID]; dup {
			e.last, e.valid = nil, false
			return watchEventToProto(ev)
		}
		e.ids[in.ID] = i
	}
	last, valid := e.last, e.valid
	e.last, e.valid = ins, true
	if !valid {
		return watchEventToProto(ev)
	}
	d := &proto.SnapshotDelta{Instances: uint32(len(ins))}
	e.seen = append(e.seen[:0], make([]bool, len(ins))...)
	for _, old := range last {
		i, ok := e.ids[old.ID]
		if !ok {
			d.Removed = append(d.Removed, old.ID)
			continue
		}
		e.seen[i] = true
		if !old.Equal(ins[i]) {
			d.Upserts = append(d.Upserts, instanceToProto(ins[i]))
		}
	}
	for i, in := range ins {
		if !e.seen[i] {
			d.Upserts = append(d.Upserts, instanceToProto(in))
		}
	}
	// A delta as large as the snapshot saves nothing: send it whole.
	if len(d.Upserts)+len(d.Removed) >= len(ins) && len(ins) > 0 {
		return watchEventToProto(ev)
	}
	return &proto.WatchEvent{Delta: d, Diagnostics: diagnosticsToProto(ev.Diagnostics)}
}

// deltaDecoder is the client shim's copy of the snapshot a stream carried
// last, to which it applies deltas.
type deltaDecoder struct {
	ins   []model.Instance
	index map[string]int // position in ins, by ID
	full  bool           // ins holds a snapshot
	seq   uint64         // the Seq of the snapshot handed on last
}

// snapshotSeq numbers the snapshots every decoder of the process hands on
// (model.Snapshot.Seq): a number is never used twice, so a delta is never
// applied to a snapshot of another stream.
var snapshotSeq atomic.Uint64

// decode turns the event received into the whole snapshot's event. An
// error means the stream cannot be followed (a delta before any snapshot,
// or a count that differs): the watch ends and the next one starts in
// full.
func (d *deltaDecoder) decode(p *proto.WatchEvent) (WatchEvent, error) {
	diags := diagnosticsFromProto(p.GetDiagnostics())
	delta := p.GetDelta()
	if delta == nil {
		ev := watchEventFromProto(p)
		d.ins = ev.Snapshot.Instances
		d.index = make(map[string]int, len(d.ins))
		for i, in := range d.ins {
			if _, dup := d.index[in.ID]; !dup {
				d.index[in.ID] = i
			}
		}
		d.full = true
		d.seq = snapshotSeq.Add(1)
		return WatchEvent{Snapshot: model.Snapshot{Instances: clone(d.ins), Seq: d.seq}, Diagnostics: diags}, nil
	}
	if !d.full {
		return WatchEvent{}, fmt.Errorf("the adapter sent a snapshot delta before any full snapshot; restarting the watch for a full one")
	}
	if len(d.index) != len(d.ins) {
		return WatchEvent{}, fmt.Errorf("the adapter sent a snapshot delta after a snapshot with a duplicate instance ID; restarting the watch for a full one")
	}
	hint := &model.SnapshotDelta{From: d.seq, Removed: delta.GetRemoved()}
	for _, pi := range delta.GetUpserts() {
		in := instanceFromProto(pi)
		hint.Upserts = append(hint.Upserts, in)
		if i, ok := d.index[in.ID]; ok {
			d.ins[i] = in
			continue
		}
		d.index[in.ID] = len(d.ins)
		d.ins = append(d.ins, in)
	}
	if gone := delta.GetRemoved(); len(gone) > 0 {
		drop := make(map[string]bool, len(gone))
		for _, id := range gone {
			drop[id] = true
		}
		kept := d.ins[:0]
		for _, in := range d.ins {
			if !drop[in.ID] {
				kept = append(kept, in)
			}
		}
		clear(d.ins[len(kept):])
		d.ins = kept
		d.index = make(map[string]int, len(d.ins))
		for i, in := range d.ins {
			d.index[in.ID] = i
		}
	}
	if want := int(delta.GetInstances()); want != len(d.ins) {
		d.full = false
		return WatchEvent{}, fmt.Errorf("applying the adapter's snapshot delta: it should give %d instances and gave %d; restarting the watch for a full snapshot", want, len(d.ins))
	}
	d.seq = snapshotSeq.Add(1)
	return WatchEvent{Snapshot: model.Snapshot{Instances: clone(d.ins), Seq: d.seq, Delta: hint}, Diagnostics: diags}, nil
}

// clone copies the list, so that the snapshot handed on never changes
// under its receiver when the next delta is applied. The instances' maps
// are shared: nobody changes them.
func clone(ins []model.Instance) []model.Instance {
	if len(ins) == 0 {
		return nil
	}
	return append(make([]model.Instance, 0, len(ins)), ins...)
}
