package registry

import (
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/weftmesh/weft/core/model"
)

// Entry is one instance in the merged view, with the adapter that reported it.
type Entry struct {
	Adapter  string
	Instance model.Instance
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
	snaps map[string][]model.Instance
}

// New returns an empty registry.
func New() *Registry { return &Registry{snaps: map[string][]model.Instance{}} }

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
		for _, in := range ins {
			owner[in.ID] = a
		}
	}
	kept := make([]model.Instance, 0, len(s.Instances))
	seen := map[string]bool{}
	for _, in := range s.Instances {
		if err := in.Validate(); err != nil {
			problems = append(problems, Problem{s.Adapter, in.ID, err})
			continue
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
		in.Namespace = in.NS()
		kept = append(kept, in)
	}
	model.SortInstances(kept)
	if old, ok := r.snaps[s.Adapter]; ok && reflect.DeepEqual(old, kept) {
		return false, problems
	}
	r.snaps[s.Adapter] = kept
	return true, problems
}

// Entries returns every instance, sorted by adapter then ID.
func (r *Registry) Entries() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Entry
	for a, ins := range r.snaps {
		for _, in := range ins {
			out = append(out, Entry{a, in})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Adapter != out[j].Adapter {
			return out[i].Adapter < out[j].Adapter
		}
		return out[i].Instance.ID < out[j].Instance.ID
	})
	return out
}

// Lookup finds an instance reported by adapter.
func (r *Registry) Lookup(adapter, id string) (model.Instance, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, in := range r.snaps[adapter] {
		if in.ID == id {
			return in, true
		}
	}
	return model.Instance{}, false
}

// Find finds an instance by ID, whichever adapter reported it.
func (r *Registry) Find(id string) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for a, ins := range r.snaps {
		for _, in := range ins {
			if in.ID == id {
				return Entry{a, in}, true
			}
		}
	}
	return Entry{}, false
}
