package registry

import (
	"fmt"
	"maps"
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
}

func (p Problem) Error() string {
	return fmt.Sprintf("adapter %s: skipping record: %v", p.Adapter, p.Err)
}

// Registry keeps the latest accepted snapshot per adapter. It is safe for
// concurrent use.
type Registry struct {
	mu    sync.RWMutex
	snaps map[string][]record // by adapter, sorted by instance ID
	rev   uint64
}

// New returns an empty registry.
func New() *Registry { return &Registry{snaps: map[string][]record{}} }

// Update replaces adapter s.Adapter's instances with the valid records of s.
// It reports whether the merged view changed, and every skipped record.
// Instance IDs must be unique across the mesh: a record whose ID another
// adapter already reports is skipped.
func (r *Registry) Update(s model.Snapshot) (changed bool, problems []Problem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	owner := map[string]string{}
	for a, ins := range r.snaps {
		if a == s.Adapter {
			continue
		}
		for _, rec := range ins {
			owner[rec.in.ID] = a
		}
	}
	// Each record keeps its revision when the adapter's previous snapshot
	// held the same record under its ID (that record was valid, so it is
	// not validated again); a new or different one gets the next revision.
	old, had := r.snaps[s.Adapter]
	prev := make(map[string]record, len(old))
	for _, rec := range old {
		prev[rec.in.ID] = rec
	}
	next := r.rev + 1
	recs := make([]record, 0, len(s.Instances))
	seen := make(map[string]bool, len(s.Instances))
	fresh := false
	for _, in := range s.Instances {
		in.Namespace = in.NS()
		p, ok := prev[in.ID]
		same := ok && sameInstance(p.in, in)
		if !same {
			if err := in.Validate(); err != nil {
				problems = append(problems, Problem{s.Adapter, in.ID, err})
				continue
			}
		}
		if seen[in.ID] {
			problems = append(problems, Problem{s.Adapter, in.ID, fmt.Errorf("instance ID %q appears twice in the snapshot; the first record is kept", in.ID)})
			continue
		}
		if a, ok := owner[in.ID]; ok {
			problems = append(problems, Problem{s.Adapter, in.ID, fmt.Errorf("instance ID %q is already reported by adapter %s; instance IDs must be unique across adapters", in.ID, a)})
			continue
		}
		seen[in.ID] = true
		if same {
			recs = append(recs, p)
			continue
		}
		recs = append(recs, record{in: in, rev: next})
		fresh = true
	}
	if had && !fresh && len(recs) == len(old) {
		return false, problems
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.in.ID, b.in.ID) })
	r.rev = next
	r.snaps[s.Adapter] = recs
	return true, problems
}

// sameInstance says whether a and b are the same record. A nil and an
// empty map or list are the same (they compile the same).
// TestSameInstanceSeesEveryField fails when model.Instance gains a field
// that this does not compare.
func sameInstance(a, b model.Instance) bool {
	return a.ID == b.ID && a.Service == b.Service && a.Namespace == b.Namespace &&
		a.Address == b.Address && a.Health == b.Health && a.Isolation == b.Isolation &&
		a.MeshListen == b.MeshListen && maps.Equal(a.Ports, b.Ports) &&
		maps.Equal(a.Meta, b.Meta) && slices.Equal(a.Tags, b.Tags) &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Workload, b.Workload)
}

// Entries returns every instance, sorted by adapter then ID.
func (r *Registry) Entries() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	adapters := make([]string, 0, len(r.snaps))
	n := 0
	for a, recs := range r.snaps {
		adapters = append(adapters, a)
		n += len(recs)
	}
	sort.Strings(adapters)
	if n == 0 {
		return nil
	}
	// Each adapter's records are kept sorted by ID.
	out := make([]Entry, 0, n)
	for _, a := range adapters {
		for _, rec := range r.snaps[a] {
			out = append(out, Entry{Adapter: a, Instance: rec.in, Rev: rec.rev})
		}
	}
	return out
}

// Lookup finds an instance reported by adapter.
func (r *Registry) Lookup(adapter, id string) (model.Instance, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, rec := range r.snaps[adapter] {
		if rec.in.ID == id {
			return rec.in, true
		}
	}
	return model.Instance{}, false
}

// Find finds an instance by ID, whichever adapter reported it.
func (r *Registry) Find(id string) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for a, recs := range r.snaps {
		for _, rec := range recs {
			if rec.in.ID == id {
				return Entry{Adapter: a, Instance: rec.in, Rev: rec.rev}, true
			}
		}
	}
	return Entry{}, false
}
