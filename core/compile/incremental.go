package compile

import (
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// Delta is what one Compiler.Update changed.
type Delta struct {
	// Changed holds the configurations compiled again, by instance ID:
	// every new instance's, and every one a change may have touched. Some
	// may equal the configuration they replace (a critical instance that
	// changed its address is in no endpoint list); the config server
	// finds those by their digest.
	Changed map[string]*meshapi.ProxyConfig
	// Removed lists, sorted, the instances whose configuration is gone.
	Removed []string
}

// Compiler compiles configurations incrementally: it keeps the last
// configuration of every instance and, for each service, which calling
// services read its endpoints, and compiles again only what a change
// touches. After every Update its configurations equal
// Compile(p, entries). A Compiler is not safe for concurrent use.
type Compiler struct {
	p *policy.Policy
	// byID holds the entries compiled, by instance ID.
	byID    map[string]registry.Entry
	configs map[string]*meshapi.ProxyConfig
	// members holds the servable instances of each group (groupKey);
	// built caches each group's endpoint list until a member changes.
	members map[string]map[string]registry.Entry
	built   map[string][]*meshapi.Endpoint
	// readers names, for each group, the services whose instances'
	// configurations hold its endpoints (as an upstream or a route's
	// mirror), from the policy; callers holds the instance IDs of every
	// service.
	readers map[string][]string
	callers map[string]map[string]struct{}
	authz   map[string]*meshapi.Authz
	unbound map[string]Skipped
	skipped []Skipped // unbound, sorted; nil when it must be sorted again
	// undeclared holds each instance's upstream ports the policy does
	// not declare (UndeclaredDrops) and its proxy mode mismatch
	// (ProxyModeDrops), and drops them all, sorted, valid
	// while dropsOK.
	undeclared map[string][]model.Dropped
	drops      []model.Dropped
	dropsOK    bool
}

// NewCompiler returns a Compiler that has compiled nothing yet.
func NewCompiler() *Compiler { return &Compiler{} }

// Update compiles the configurations for policy p and entries, and
// returns what changed since the last Update.
//
// Entries come from one registry.Registry (Registry.Entries): an entry
// whose Rev equals the one the last Update saw for its adapter and ID is
// taken as unchanged without comparing it; entries with Rev 0 (built by
// hand) are compared whole. Instance IDs are unique. A policy is treated
// as immutable: a different *policy.Policy than last time compiles every
// configuration again (a policy change may touch any of them).
func (c *Compiler) Update(p *policy.Policy, entries []registry.Entry) Delta {
	var old map[string]*meshapi.ProxyConfig
	if p != c.p {
		old = c.configs
		c.reset(p)
	}
	gone, added := c.diff(entries)
	return c.apply(p, old, gone, added)
}

// UpdateChanged is Update when only some entries may have changed since
// the last Update or UpdateChanged, for the same policy: changed holds
// their entries now, removed the records that are gone (a key whose
// record another adapter holds now is in changed, under that adapter).
// An entry that equals the one compiled (by Rev, as Update compares) is
// left alone. Its cost grows with the change, not with the mesh. It
// returns false, and compiles nothing, when p is not the policy of the
// last Update: the caller must call Update with every entry.
func (c *Compiler) UpdateChanged(p *policy.Policy, changed []registry.Entry, removed []registry.Key) (Delta, bool) {
	if p == nil || p != c.p {
		return Delta{}, false
	}
	var gone, added []registry.Entry
	left := map[string]bool{}
	for _, k := range removed {
		if old, ok := c.byID[k.ID]; ok && old.Adapter == k.Adapter && !left[k.ID] {
			left[k.ID] = true
			gone = append(gone, old)
		}
	}
	for _, e := range changed {
		id := e.Instance.ID
		if old, ok := c.byID[id]; ok && !left[id] {
			if old.Adapter == e.Adapter && sameEntry(old, e) {
				continue
			}
			left[id] = true
			gone = append(gone, old)
		}
		added = append(added, e)
	}
	return c.apply(p, nil, gone, added), true
}

// apply compiles the change from gone to added for p; old holds the
// configurations of the policy before p, when p is new.
func (c *Compiler) apply(p *policy.Policy, old map[string]*meshapi.ProxyConfig, gone, added []registry.Entry) Delta {
	dirtyGroups := map[string]bool{}
	dirty := map[string]bool{}
	// The unbound list is sorted again only when it changed: an instance
	// whose record changed leaves (gone) and comes back (added), most
	// often unbound just as before.
	var wasUnbound map[string]Skipped
	for _, e := range gone {
		in := e.Instance
		k := groupKey(in.NS(), in.Service)
		if m := c.members[k]; m != nil {
			if _, ok := m[in.ID]; ok {
				delete(m, in.ID)
				dirtyGroups[k] = true
			}
		}
		delete(c.callers[in.Service], in.ID)
		delete(c.byID, in.ID)
		if _, ok := c.undeclared[in.ID]; ok {
			delete(c.undeclared, in.ID)
			c.dropsOK = false
		}
		if s, ok := c.unbound[in.ID]; ok {
			delete(c.unbound, in.ID)
			if wasUnbound == nil {
				wasUnbound = map[string]Skipped{}
			}
			wasUnbound[in.ID] = s
		}
	}
	for _, e := range added {
		in := e.Instance
		c.byID[in.ID] = e
		dirty[in.ID] = true
		if c.callers[in.Service] == nil {
			c.callers[in.Service] = map[string]struct{}{}
		}
		c.callers[in.Service][in.ID] = struct{}{}
		var drops []model.Dropped
		if ups := UndeclaredUpstreams(p, in.Service, in.Ports); len(ups) > 0 {
			drops = undeclaredDrops(e, ups)
		}
		if d, ok := proxyModeDrop(p, e); ok {
			drops = append(drops, d)
		}
		if len(drops) > 0 {
			c.undeclared[in.ID] = drops
			c.dropsOK = false
		}
		err := p.Bound(in.Service, in.Workload)
		if err != nil {
			s := Skipped{
				Adapter: e.Adapter, Instance: in.ID, Service: in.Service,
				Reason: ReasonUnbound, Workload: in.Workload, Detail: err.Error(),
			}
			c.unbound[in.ID] = s
			if was, ok := wasUnbound[in.ID]; !ok || !was.Equal(s) {
				c.skipped = nil
			}
			delete(wasUnbound, in.ID)
		}
		if err != nil && !p.Mesh.Permissive() {
			continue
		}
		k := groupKey(in.NS(), in.Service)
		if c.members[k] == nil {
			c.members[k] = map[string]registry.Entry{}
		}
		c.members[k][in.ID] = e
		dirtyGroups[k] = true
	}
	if len(wasUnbound) > 0 { // unbound before, and now gone or bound
		c.skipped = nil
	}
	for k := range dirtyGroups {
		delete(c.built, k)
		if len(c.members[k]) == 0 {
			delete(c.members, k)
		}
		for _, svc := range c.readers[k] {
			for id := range c.callers[svc] {
				dirty[id] = true
			}
		}
	}

	d := Delta{Changed: make(map[string]*meshapi.ProxyConfig, len(dirty))}
	for _, e := range gone {
		if _, ok := c.byID[e.Instance.ID]; !ok {
			delete(c.configs, e.Instance.ID)
			d.Removed = append(d.Removed, e.Instance.ID)
		}
	}
	for id := range dirty {
		in := c.byID[id].Instance
		az, ok := c.authz[in.Service]
		if !ok {
			az = authz(p, in.Service)
			c.authz[in.Service] = az
		}
		cfg := instanceConfig(p, c, az, in)
		c.configs[id] = cfg
		d.Changed[id] = cfg
	}
	// After a policy change (which starts from nothing, so nothing was
	// removed above), what the old policy compiled and the new one does
	// not is gone.
	for id := range old {
		if _, ok := c.configs[id]; !ok {
			d.Removed = append(d.Removed, id)
		}
	}
	sort.Strings(d.Removed)
	return d
}

// reset forgets everything compiled, for policy p.
func (c *Compiler) reset(p *policy.Policy) {
	c.p = p
	c.undeclared = map[string][]model.Dropped{}
	c.drops, c.dropsOK = nil, true
	c.byID = map[string]registry.Entry{}
	c.configs = map[string]*meshapi.ProxyConfig{}
	c.members = map[string]map[string]registry.Entry{}
	c.built = map[string][]*meshapi.Endpoint{}
	c.callers = map[string]map[string]struct{}{}
	c.authz = map[string]*meshapi.Authz{}
	c.unbound = map[string]Skipped{}
	c.skipped = nil
	c.readers = map[string][]string{}
	read := func(k, caller string) {
		if !slices.Contains(c.readers[k], caller) {
			c.readers[k] = append(c.readers[k], caller)
		}
	}
	// The groups instanceConfig reads for a caller: its upstreams'
	// endpoints and their routes' mirrors'.
	gatewayReads(p, read) // gateway.go
	for name, svc := range p.Services {
		for _, u := range svc.Upstreams {
			dst := serviceOf(p, u.Service)
			read(groupKey(nsOr(dst.Namespace), u.Service), name)
			for _, r := range dst.Routes {
				if r.Mirror != nil {
					ms := serviceOf(p, r.Mirror.Service)
					read(groupKey(nsOr(ms.Namespace), r.Mirror.Service), name)
				}
			}
		}
	}
}

// diff compares entries with those compiled: gone are the compiled
// entries that left or changed, added the entries that arrived or changed.
func (c *Compiler) diff(entries []registry.Entry) (gone, added []registry.Entry) {
	now := make(map[string]bool, len(entries))
	for _, e := range entries {
		id := e.Instance.ID
		now[id] = true
		old, ok := c.byID[id]
		switch {
		case !ok:
			added = append(added, e)
		case old.Adapter != e.Adapter || !sameEntry(old, e):
			gone = append(gone, old)
			added = append(added, e)
		}
	}
	for id, old := range c.byID {
		if !now[id] {
			gone = append(gone, old)
		}
	}
	return gone, added
}

// sameEntry says whether two entries of one adapter and ID hold the same
// record: by revision when the registry stamped one, else whole.
func sameEntry(a, b registry.Entry) bool {
	if a.Rev != 0 && b.Rev != 0 {
		return a.Rev == b.Rev
	}
	return reflect.DeepEqual(a, b)
}

// endpoints implements endpointSource from the groups' members, caching
// each list until a member changes.
func (c *Compiler) endpoints(svc policy.Service, ns string) []*meshapi.Endpoint {
	k := groupKey(ns, svc.Name)
	if eps, ok := c.built[k]; ok {
		return eps
	}
	group := make([]registry.Entry, 0, len(c.members[k]))
	for _, e := range c.members[k] {
		group = append(group, e)
	}
	eps := endpointList(svc, group)
	c.built[k] = eps
	return eps
}

// Configs returns every configuration as of the last Update, by instance
// ID: what a config server that missed the deltas needs. The map is new;
// the configurations are shared and must not be changed.
func (c *Compiler) Configs() map[string]*meshapi.ProxyConfig {
	out := make(map[string]*meshapi.ProxyConfig, len(c.configs))
	for id, cfg := range c.configs {
		out[id] = cfg
	}
	return out
}

// Len returns how many configurations the Compiler holds.
func (c *Compiler) Len() int { return len(c.configs) }

// Unbound is Unbound(p, entries) for the last Update, kept up to date
// with each change rather than computed again.
func (c *Compiler) Unbound() []Skipped {
	if c.skipped == nil && len(c.unbound) > 0 {
		c.skipped = make([]Skipped, 0, len(c.unbound))
		for _, s := range c.unbound {
			c.skipped = append(c.skipped, s)
		}
		sort.Slice(c.skipped, func(i, j int) bool { return c.skipped[i].Instance < c.skipped[j].Instance })
	}
	return slices.Clone(c.skipped)
}

// Undeclared is UndeclaredDrops followed, per instance, by ProxyModeDrops
// for the last Update, kept up to date with each change rather than
// computed again; sorted by adapter, then instance ID. The slice is shared: the caller must not change it.
func (c *Compiler) Undeclared() []model.Dropped {
	if !c.dropsOK {
		ids := make([]string, 0, len(c.undeclared))
		for id := range c.undeclared {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int {
			if n := strings.Compare(c.undeclared[a][0].Adapter, c.undeclared[b][0].Adapter); n != 0 {
				return n
			}
			return strings.Compare(a, b)
		})
		c.drops = nil
		for _, id := range ids {
			c.drops = append(c.drops, c.undeclared[id]...)
		}
		c.dropsOK = true
	}
	return c.drops
}
