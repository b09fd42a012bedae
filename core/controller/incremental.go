package controller

import (
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// incremental is rebuild's compile step: a compile.Compiler, which
// compiles again only the configurations a change touches, and the
// config server that holds everything it compiled so far.
type incremental struct {
	compiler *compile.Compiler
	fed      *meshserver.Server
	// given: some server has had the Compiler's configurations (and
	// sets their trust bundle), so another one gets copies.
	given bool
}

// build compiles the configurations for p and entries and hands srv (when
// not nil) what changed: the Compiler's delta, or every configuration
// when srv has not had the earlier ones (the first build, or a server set
// since). It returns how many configurations there are and how many of
// them changed.
func (i *incremental) build(p *policy.Policy, entries []registry.Entry, srv *meshserver.Server) (configs, changed int) {
	if i.compiler == nil {
		i.compiler = compile.NewCompiler()
	}
	d := i.compiler.Update(p, entries)
	switch {
	case srv == nil:
		i.fed = nil
	case srv != i.fed:
		cfgs := i.compiler.Configs()
		if i.given {
			for id, cfg := range cfgs {
				cfgs[id] = proto.Clone(cfg).(*meshapi.ProxyConfig)
			}
		}
		i.fed, i.given = srv, true
		changed = srv.Update(cfgs)
	default:
		changed = srv.Apply(d.Changed, d.Removed)
	}
	return i.compiler.Len(), changed
}

// unbound is compile.Unbound for the last build.
func (i *incremental) unbound() []compile.Skipped { return i.compiler.Unbound() }
