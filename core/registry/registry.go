package registry

import (
	"fmt"
	"slices"
	"sort"
	"strings"
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
}

// snapshot is one adapter's accepted records, sorted by instance ID, and
// where each ID is among them.
type snapshot struct {
	recs  []record
	index map[string]int
}

// New returns an empty registry.
func New() *Registry { return &Registry{snaps: map[string]*snapshot{}} }

// Update replaces adapter s.Adapter's instances with the valid records of s.
// It reports whether the merged view changed, and every skipped record.
// Instance IDs must be unique across the mesh: a record whose ID another
// adapter already reports is skipped.
func (r *Registry) Update(s model.Snapshot) (changed bool, problems []Problem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	owner := func(id string) (string, bool) {
		for a, snap := range r.snaps {
			if a == s.Adapter {
				continue
			}
			if _, ok := snap.index[id]; ok {
				return a, true
			}
		}
		return "", false
	}
	// Each record keeps its revision when the adapter's previous snapshot
	// held the same record under its ID (that record was valid, so it is
	// not validated again); a new or different one gets the next revision.
	old := r.snaps[s.Adapter]
	if old == nil {
		old = &snapshot{}
	}
	next := r.rev + 1
	// kept[i] says whether old.recs[i]'s ID was accepted again, and
	// replaced holds those whose record changed, by position; added holds
	// accepted records of IDs the old snapshot did not have.
	kept := make([]bool, len(old.recs))
	replaced := map[int]record{}
	var added []record
	addedIDs := map[string]bool{}
	fresh, matched := false, 0
	for _, in := range s.Instances {
		in.Namespace = in.NS()
		pos, had := old.index[in.ID]
		same := had && sameInstance(old.recs[pos].in, in)
		if !same {
			if err := in.Validate(); err != nil {
				problems = append(problems, Problem{s.Adapter, in.ID, err, model.DropReason(err)})
				continue
			}
		}
		if (had && kept[pos]) || addedIDs[in.ID] {
			problems = append(problems, Problem{s.Adapter, in.ID, fmt.Errorf("instance ID %q appears twice in the snapshot; the first record is kept", in.ID), model.ReasonDuplicateID})
			continue
		}
		// An ID this adapter's last snapshot held is no other adapter's:
		// the others were refused it while this one had it.
		if !had {
			if a, ok := owner(in.ID); ok {
				problems = append(problems, Problem{s.Adapter, in.ID, fmt.Errorf("instance ID %q is already reported by adapter %s; instance IDs must be unique across adapters", in.ID, a), model.ReasonDuplicateID})
				continue
			}
		}
		rec := record{in: in, rev: next}
		fresh = fresh || !same
		switch {
		case had:
			kept[pos] = true
			matched++
			if !same {
				replaced[pos] = rec
			}
		default:
			added = append(added, rec)
			addedIDs[in.ID] = true
		}
	}
	_, known := r.snaps[s.Adapter]
	switch {
	case known && !fresh && matched == len(old.recs) && len(added) == 0:
		return false, problems
	case known && matched == len(old.recs) && len(added) == 0:
		// The same IDs: the changed records are replaced where they are.
		for i, rec := range replaced {
			old.recs[i] = rec
		}
	default:
		recs := make([]record, 0, matched+len(added))
		for i, ok := range kept {
			if rec, changed := replaced[i]; changed {
				recs = append(recs, rec)
			} else if ok {
				recs = append(recs, old.recs[i])
			}
		}
		recs = append(recs, added...)
		slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.in.ID, b.in.ID) })
		index := make(map[string]int, len(recs))
		for i, rec := range recs {
			index[rec.in.ID] = i
		}
		r.snaps[s.Adapter] = &snapshot{recs: recs, index: index}
	}
	r.rev = next
	return true, problems
}

// sameInstance says whether a and b are the same record (model.Instance's
// Equal: a nil and an empty map or list are the same).
// TestSameInstanceSeesEveryField fails when model.Instance gains a field
// that this does not compare.
func sameInstance(a, b model.Instance) bool { return a.Equal(b) }

// Entries returns every instance, sorted by adapter then ID.
func (r *Registry) Entries() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
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
	// Each adapter's records are kept sorted by ID.
	out := make([]Entry, 0, n)
	for _, a := range adapters {
		for _, rec := range r.snaps[a].recs {
			out = append(out, Entry{Adapter: a, Instance: rec.in, Rev: rec.rev})
		}
	}
	return out
}

// Lookup finds an instance reported by adapter.
func (r *Registry) Lookup(adapter, id string) (model.Instance, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if snap, ok := r.snaps[adapter]; ok {
		if i, ok := snap.index[id]; ok {
			return snap.recs[i].in, true
		}
	}
	return model.Instance{}, false
}

// Find finds an instance by ID, whichever adapter reported it.
func (r *Registry) Find(id string) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for a, snap := range r.snaps {
		if i, ok := snap.index[id]; ok {
			rec := snap.recs[i]
			return Entry{Adapter: a, Instance: rec.in, Rev: rec.rev}, true
		}
	}
	return Entry{}, false
}
