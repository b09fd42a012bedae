package controller

import (
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// incremental is rebuild's compile step: a compile.Compiler, which
// compiles again only the configurations a change touches, and whether
// the listeners have had a full build since they were set.
type incremental struct {
	compiler *compile.Compiler
	fed      bool
	// cursor is the registry revision the compiler has seen every change
	// up to (registry.ChangedSince); primed says it is valid.
	cursor uint64
	primed bool
	// partial counts the builds that looked at the changed records only
	// (tests read it).
	partial int
}

// build compiles the configurations for p and the registry's entries
// (overlaid with sidecars' health) and returns the build for the
// listeners: the Compiler's delta or, when publishing and the listeners
// have not had a full build yet, every configuration. It also returns how
// many configurations there are.
//
// When the policy is the one compiled last and the registry still
// remembers every record changed since, only those records (and the
// instances whose health reports came or went) are looked at: a change
// of one instance costs work that grows with what it touches, not with
// the mesh. Otherwise every entry is compiled against the last.
func (i *incremental) build(p *policy.Policy, reg *registry.Registry, health *sidecarHealth, publishing bool) (Build, int) {
	if i.compiler == nil {
		i.compiler = compile.NewCompiler()
	}
	keys, rev, ok := reg.ChangedSince(i.cursor)
	var d compile.Delta
	done := false
	if ok && i.primed {
		d, done = i.changed(p, reg, health, keys)
	}
	if !done {
		d = i.compiler.Update(p, health.apply(reg.Entries()))
	} else {
		i.partial++
	}
	i.cursor, i.primed = rev, true
	b := Build{Policy: p, Configs: d.Changed, Removed: d.Removed}
	switch {
	case !publishing:
		i.fed = false
	case !i.fed:
		b = Build{Policy: p, Full: true, Configs: i.compiler.Configs()}
		i.fed = true
	}
	return b, i.compiler.Len()
}

// changed compiles the records keys name and the instances whose health
// reports changed; false when the compiler must take every entry.
func (i *incremental) changed(p *policy.Policy, reg *registry.Registry, health *sidecarHealth, keys []registry.Key) (compile.Delta, bool) {
	var changed []registry.Entry
	var removed []registry.Key
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if e, ok := reg.Get(k); ok {
			health.overlay(&e)
			changed = append(changed, e)
			seen[e.Instance.ID] = true
			continue
		}
		removed = append(removed, k)
	}
	for _, k := range removed {
		if e, ok := reg.Find(k.ID); ok {
			// Another adapter reports it now: it is among the changed.
			if !seen[k.ID] {
				health.overlay(&e)
				changed = append(changed, e)
				seen[k.ID] = true
			}
			continue
		}
		health.forget(k.ID)
	}
	for _, id := range health.take() {
		if seen[id] {
			continue
		}
		e, ok := reg.Find(id)
		if !ok {
			health.forget(id)
			continue
		}
		health.overlay(&e)
		changed = append(changed, e)
	}
	return i.compiler.UpdateChanged(p, changed, removed)
}

// unbound is compile.Unbound for the last build.
func (i *incremental) unbound() []compile.Skipped { return i.compiler.Unbound() }

// undeclared is compile.UndeclaredDrops and compile.ProxyModeDrops for the
// last build (Compiler.Undeclared).
func (i *incremental) undeclared() []model.Dropped { return i.compiler.Undeclared() }
