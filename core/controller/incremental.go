package controller

import (
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// incremental is rebuild's compile step: a compile.Compiler, which
// compiles again only the configurations a change touches, and whether
// the listeners have had a full build since they were set.
type incremental struct {
	compiler *compile.Compiler
	fed      bool
}

// build compiles the configurations for p and entries and returns the
// build for the listeners: the Compiler's delta or, when publishing and
// the listeners have not had a full build yet, every configuration. It
// also returns how many configurations there are.
func (i *incremental) build(p *policy.Policy, entries []registry.Entry, publishing bool) (Build, int) {
	if i.compiler == nil {
		i.compiler = compile.NewCompiler()
	}
	d := i.compiler.Update(p, entries)
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

// unbound is compile.Unbound for the last build.
func (i *incremental) unbound() []compile.Skipped { return i.compiler.Unbound() }
