package registry

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/weftmesh/weft/core/model"
)

// Entry is one instance in the merged view, with the adapter that reported it.
type Entry struct {
	Adapter  string
	Instance model.Instance
	// Rev is the registry's revision at which this record last changed:
	// when its ID first appeared, or when the adapter reported it
	// different from before. While an ID keeps its Rev its record is the
	// same, so a consumer that remembers the Rev of each ID (the
	// incremental compiler) finds what changed without comparing records.
	Rev uint64
}

// record is an accepted instance and the revision it last changed at.
type record struct {
	in  model.Instance
	rev uint64
	// mark is the generation of the adapter's snapshot that last held
	// the record (replace).
	mark uint64
}

// Problem is a record that was skipped.
type Problem struct {
	Adapter string
	ID      string
	Err     error
	// Reason is why, as model's Reason constants say it.
	Reason string
}

// Dropped is the problem as the controller's status lists it.
func (p Problem) Dropped() model.Dropped {
	return model.Dropped{Adapter: p.Adapter, Instance: p.ID, Reason: p.Reason, Detail: p.Err.Error()}
}

func (p Problem) Error() string {
	return fmt.Sprintf("adapter %s: skipping record: %v", p.Adapter, p.Err)
}

// Registry keeps the latest accepted snapshot per adapter. It is safe for
// concurrent use.
type Registry struct {
	mu    sync.RWMutex
	snaps map[string]*snapshot // by adapter
	rev   uint64
	// journal lists the records changed by the updates after revision
	// floor, oldest first (ChangedSince).
	journal []journaled
	floor   uint64
}

// Key names one record: the adapter that reports it and its instance ID.
type Key struct{ Adapter, ID string }

type journaled struct {
	rev uint64
	key Key
}

// maxJournal bounds the journal: past it the journal starts again empty,
// and a consumer further behind takes every entry (ChangedSince says so).
const maxJournal = 1 << 14

// snapshot is one adapter's accepted records by instance ID, and what the
// registry must remember to apply the adapter's next delta as its next
// whole snapshot would be applied.
type snapshot struct {
	recs map[string]*record
	gen  uint64 // replace's generation
	// order is the IDs of recs, sorted, when sorted is set (Entries sorts
	// them again after IDs came or went).
	order  []string
	sorted bool
	// seq is the Seq of the snapshot applied last: a delta from it may
	// be applied (0: none may).
	seq uint64
	// problems are the records of the last snapshot that were skipped,
	// and refused those of them skipped only because another adapter
	// reports their ID: a later update takes them when their ID is free.
	problems []Problem
	refused  map[string]model.Instance
}

// New returns an empty registry.
func New() *Registry { return &Registry{snaps: map[string]*snapshot{}} }

// Update replaces adapter s.Adapter's instances with the valid records of s.
// It reports whether the merged view changed, and every skipped record.
// Instance IDs must be unique across the mesh: a record whose ID another
// adapter already reports is skipped.
//
// When s.Delta changes the snapshot Update took last from s.Adapter (its
// From is that one's Seq), only the delta's records are looked at: the
// result is the same as taking s whole, at a cost that grows with the
// change rather than with the adapter's instances.
func (r *Registry) Update(s model.Snapshot) (changed bool, problems []Problem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.snaps[s.Adapter]; old != nil && s.Delta != nil && old.seq != 0 && s.Delta.From == old.seq {
		return r.applyDelta(old, s)
	}
	return r.replace(s)
}

// owner returns the adapter other than self that reports id, if any.
func (r *Registry) owner(self, id string) (string, bool) {
	for a, snap := range r.snaps {
		if a == self {
			continue
		}
		if _, ok := snap.recs[id]; ok {
			return a, true
		}
	}
	return "", false
}

func duplicateOf(adapter, id, owner string) Problem {
	return Problem{adapter, id, fmt.Errorf("instance ID %q is already reported by adapter %s; instance IDs must be unique across adapters", id, owner), model.ReasonDuplicateID}
}

// replace takes s whole. It changes the adapter's records in place:
// every record s holds is marked with a new generation, and those left
// unmarked are gone; only new and changed records are allocated.
func (r *Registry) replace(s model.Snapshot) (changed bool, problems []Problem) {
	snap, known := r.snaps[s.Adapter]
	if snap == nil {
		snap = &snapshot{recs: map[string]*record{}}
		r.snaps[s.Adapter] = snap
	}
	snap.gen++
	gen, next := snap.gen, r.rev+1
	var refused map[string]model.Instance
	var changes []Key
	// skipped are the IDs of records skipped so far: a record after one
	// of them holds an ID twice too.
	var skipped map[string]bool
	dups := false
	skip := func(id string) {
		if skipped == nil {
			skipped = map[string]bool{}
		}
		skipped[id] = true
	}
	for _, in := range s.Instances {
		in.Namespace = in.NS()
		prev := snap.recs[in.ID]
		taken := prev != nil && prev.mark == gen // earlier in s
		dups = dups || taken || skipped[in.ID]
		// A record the adapter reported before unchanged (or the same
		// as the one taken earlier in s) was valid: not validated again.
		same := prev != nil && sameInstance(prev.in, in)
		if !same {
			if err := in.Validate(); err != nil {
				problems = append(problems, Problem{s.Adapter, in.ID, err, model.DropReason(err)})
				skip(in.ID)
				continue
			}
		}
		if taken {
			problems = append(problems, Problem{s.Adapter, in.ID, fmt.Errorf("instance ID %q appears twice in the snapshot; the first record is kept", in.ID), model.ReasonDuplicateID})
			continue
		}
		// An ID this adapter's last snapshot held is no other adapter's:
		// the others were refused it while this one had it.
		if prev == nil {
			if a, ok := r.owner(s.Adapter, in.ID); ok {
				problems = append(problems, duplicateOf(s.Adapter, in.ID, a))
				if refused == nil {
					refused = map[string]model.Instance{}
				}
				refused[in.ID] = in
				skip(in.ID)
				continue
			}
		}
		switch {
		case same:
			prev.mark = gen
			continue
		case prev != nil:
			*prev = record{in: in, rev: next, mark: gen}
		default:
			snap.recs[in.ID] = &record{in: in, rev: next, mark: gen}
			snap.sorted = false
		}
		changes = append(changes, Key{s.Adapter, in.ID})
	}
	for id, rec := range snap.recs {
		if rec.mark != gen {
			delete(snap.recs, id)
			snap.sorted = false
			changes = append(changes, Key{s.Adapter, id})
		}
	}
	snap.seq, snap.problems, snap.refused = s.Seq, problems, refused
	if dups {
		snap.seq = 0 // a delta keys records by ID: none may follow
	}
	if known && len(changes) == 0 {
		return false, problems
	}
	r.commit(next, changes)
	return true, problems
}

// applyDelta takes s's delta to old, the adapter's snapshot its From
// names.
func (r *Registry) applyDelta(old *snapshot, s model.Snapshot) (changed bool, problems []Problem) {
	next := r.rev + 1
	d := s.Delta
	touched := make(map[string]bool, len(d.Upserts)+len(d.Removed))
	var changes []Key
	drop := func(id string) {
		if _, ok := old.recs[id]; ok {
			delete(old.recs, id)
			old.sorted = false
			changes = append(changes, Key{s.Adapter, id})
		}
		delete(old.refused, id)
	}
	for _, id := range d.Removed {
		touched[id] = true
		drop(id)
	}
	var fresh []Problem
	take := func(in model.Instance) {
		prev, had := old.recs[in.ID]
		if had && sameInstance(prev.in, in) {
			return
		}
		if err := in.Validate(); err != nil {
			fresh = append(fresh, Problem{s.Adapter, in.ID, err, model.DropReason(err)})
			drop(in.ID)
			return
		}
		if !had {
			if a, ok := r.owner(s.Adapter, in.ID); ok {
				fresh = append(fresh, duplicateOf(s.Adapter, in.ID, a))
				if old.refused == nil {
					old.refused = map[string]model.Instance{}
				}
				old.refused[in.ID] = in
				return
			}
			old.sorted = false
		}
		delete(old.refused, in.ID)
		if had {
			*prev = record{in: in, rev: next, mark: prev.mark}
		} else {
			old.recs[in.ID] = &record{in: in, rev: next, mark: old.gen}
		}
		changes = append(changes, Key{s.Adapter, in.ID})
	}
	for _, in := range d.Upserts {
		in.Namespace = in.NS()
		touched[in.ID] = true
		take(in)
	}
	// A record refused because another adapter reported its ID is taken
	// as soon as that ID is free, as the whole snapshot would be.
	for id, in := range old.refused {
		if !touched[id] {
			touched[id] = true
			delete(old.refused, id)
			take(in)
		}
	}
	// The problems of records the delta did not touch stay.
	for _, p := range old.problems {
		if !touched[p.ID] {
			problems = append(problems, p)
		}
	}
	problems = append(problems, fresh...)
	old.problems = problems
	old.seq = s.Seq
	if len(changes) == 0 {
		return false, problems
	}
	r.commit(next, changes)
	return true, problems
}

// commit makes next the registry's revision, with changes its records.
func (r *Registry) commit(next uint64, changes []Key) {
	r.rev = next
	if len(r.journal)+len(changes) > maxJournal {
		r.journal, r.floor = r.journal[:0], next
		return
	}
	for _, k := range changes {
		r.journal = append(r.journal, journaled{next, k})
	}
}

// Rev returns the registry's revision: it grows with every update that
// changed a record.
func (r *Registry) Rev() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rev
}

// ChangedSince returns the records changed after revision since (each
// once; a record that left is among them), and the revision they bring
// the caller to. ok is false when the registry no longer remembers every
// change since then: the caller must take Entries whole.
func (r *Registry) ChangedSince(since uint64) (keys []Key, rev uint64, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if since < r.floor {
		return nil, r.rev, false
	}
	i := sort.Search(len(r.journal), func(i int) bool { return r.journal[i].rev > since })
	seen := make(map[Key]bool, len(r.journal)-i)
	for _, j := range r.journal[i:] {
		if !seen[j.key] {
			seen[j.key] = true
			keys = append(keys, j.key)
		}
	}
	return keys, r.rev, true
}

// Get returns the record key names, if the registry holds it.
func (r *Registry) Get(k Key) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if snap, ok := r.snaps[k.Adapter]; ok {
		if rec, ok := snap.recs[k.ID]; ok {
			return Entry{Adapter: k.Adapter, Instance: rec.in, Rev: rec.rev}, true
		}
	}
	return Entry{}, false
}

// sameInstance says whether a and b are the same record (model.Instance's
// Equal: a nil and an empty map or list are the same).
// TestSameInstanceSeesEveryField fails when model.Instance gains a field
// that this does not compare.
func sameInstance(a, b model.Instance) bool { return a.Equal(b) }

// Entries returns every instance, sorted by adapter then ID.
func (r *Registry) Entries() []Entry {
	// The write lock: an adapter whose IDs changed is sorted again here.
	r.mu.Lock()
	defer r.mu.Unlock()
	adapters := make([]string, 0, len(r.snaps))
	n := 0
	for a, snap := range r.snaps {
		adapters = append(adapters, a)
		n += len(snap.recs)
	}
	sort.Strings(adapters)
	if n == 0 {
		return nil
	}
	out := make([]Entry, 0, n)
	for _, a := range adapters {
		snap := r.snaps[a]
		if !snap.sorted {
			snap.order = snap.order[:0]
			for id := range snap.recs {
				snap.order = append(snap.order, id)
			}
			slices.Sort(snap.order)
			snap.sorted = true
		}
		for _, id := range snap.order {
			rec := snap.recs[id]
			out = append(out, Entry{Adapter: a, Instance: rec.in, Rev: rec.rev})
		}
	}
	return out
}

// Lookup finds an instance reported by adapter.
func (r *Registry) Lookup(adapter, id string) (model.Instance, bool) {
	e, ok := r.Get(Key{adapter, id})
	return e.Instance, ok
}

// Find finds an instance by ID, whichever adapter reported it.
func (r *Registry) Find(id string) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for a, snap := range r.snaps {
		if rec, ok := snap.recs[id]; ok {
			return Entry{Adapter: a, Instance: rec.in, Rev: rec.rev}, true
		}
	}
	return Entry{}, false
}
