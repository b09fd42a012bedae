package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultTrustDomain is used until a policy names one.
const DefaultTrustDomain = "weft.local"

// Options configure a Controller.
type Options struct {
	Registry *registry.Registry
	Logger   *slog.Logger
	// OnBuild, if set, is called after every compilation with the number of
	// configurations compiled and how many of them changed.
	OnBuild func(configs, changed int)
	// Adapters names every configured adapter. After a (re)start no
	// configuration is compiled until each has delivered its first
	// snapshot, or FirstSnapshotWait has passed: a sidecar never gets a
	// configuration that lacks another adapter's endpoints only because
	// that adapter was slower to start.
	Adapters []string
	// FirstSnapshotWait bounds that wait (DefaultFirstSnapshotWait when 0).
	FirstSnapshotWait time.Duration
	// SidecarHealthGrace is how long a sidecar's last health report stays
	// in force after its config stream ended, unless it reports again
	// (DefaultSidecarHealthGrace when 0; health.go).
	SidecarHealthGrace time.Duration
}

// DefaultFirstSnapshotWait is how long the controller holds configurations
// back for an adapter's first snapshot after a (re)start.
const DefaultFirstSnapshotWait = 30 * time.Second

// Build is one compilation, as listeners receive it.
type Build struct {
	// Policy is the policy in force that was compiled; its
	// Mesh.TrustDomain names the identities in Configs.
	Policy *policy.Policy
	// Full says Configs holds every instance's configuration (the first
	// build listeners get). Otherwise Configs holds only the ones that
	// changed since the previous build and Removed the instances that are
	// gone: incremental compilation (core/compile.Compiler) compiled
	// nothing else.
	Full bool
	// Configs are proxy configurations by instance ID. Listeners share
	// them: one must not change a configuration another reads (the config
	// server sets their trust bundle, and is meant to run first).
	Configs map[string]*meshapi.ProxyConfig
	// Removed are the instances whose configuration is gone (never set
	// when Full: what Configs lacks is gone).
	Removed []string
	// Took is how long the compilation took (what an Observer sees).
	Took time.Duration
}

// Listener receives every compilation, in Run's goroutine: Publish must
// not block for long.
type Listener interface {
	// Publish takes one build and returns how many of its configurations
	// changed for this listener (0 for one that does not compare).
	Publish(Build) (changed int)
}

// ConfigServer is the config server (core/meshserver) as a listener: it
// streams the configurations that changed to their sidecars.
func ConfigServer(s *meshserver.Server) Listener { return configServer{s} }

type configServer struct{ s *meshserver.Server }

func (c configServer) Publish(b Build) int {
	if b.Full {
		return c.s.Update(b.Configs)
	}
	return c.s.Apply(b.Configs, b.Removed)
}

// Controller merges snapshots and policy into proxy configurations.
type Controller struct {
	o Options
	// listeners are Run's: every compilation is published to them.
	listeners []Listener

	mu     sync.RWMutex
	policy *policy.Policy
	builds int
	// unbound are the instances whose workload no binding of their
	// service names, as of the last compilation; logged holds the ones
	// already logged, so each is logged once.
	unbound []compile.Skipped
	logged  map[string]bool
	// loggedMode is the identity binding mode logged holds keys of.
	loggedMode string
	// waiting are the adapters whose first snapshot the controller still
	// waits for; gaveUp, that the wait passed without them.
	waiting []string
	gaveUp  bool
	// drops are the instances left out (or an upstream port of theirs
	// ignored) for a reason: by adapter, what the adapter's snapshot and
	// the registry dropped; and what the last compilation ignored.
	drops      map[string][]model.Dropped
	undeclared []model.Dropped
	inc        incremental // rebuild's compiler; only rebuild uses it
	// health is the overlay of sidecars' health reports (health.go).
	health *sidecarHealth

	// unisolated warns once about each instance whose ports are open
	// beside its sidecar.
	unisolated isolationWarnings
}

// New returns a controller.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Controller{o: o, health: newSidecarHealth(o.SidecarHealthGrace)}
}

// TrustDomain returns the trust domain of the policy in force.
func (c *Controller) TrustDomain() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.policy == nil || c.policy.Mesh.TrustDomain == "" {
		return DefaultTrustDomain
	}
	return c.policy.Mesh.TrustDomain
}

// Policy returns the policy in force (nil before the first).
func (c *Controller) Policy() *policy.Policy {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.policy
}

// Builds returns how many times configurations were compiled.
func (c *Controller) Builds() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.builds
}

// Lookup returns instance id as adapter's latest snapshot has it
// (meshserver.Workloads, for Join).
func (c *Controller) Lookup(adapter, id string) (model.Instance, bool) {
	return c.o.Registry.Lookup(adapter, id)
}

// Instance returns instance id from whichever adapter reports it, and that
// adapter (meshserver.Workloads, for Renew).
func (c *Controller) Instance(id string) (adapter string, in model.Instance, ok bool) {
	e, ok := c.o.Registry.Find(id)
	return e.Adapter, e.Instance, ok
}

// Entries lists every instance the adapters report, with its adapter.
func (c *Controller) Entries() []registry.Entry { return c.o.Registry.Entries() }

// Run consumes snapshots and policies until ctx is done, and publishes
// every compilation to listeners, in order. Run it once per controller.
func (c *Controller) Run(ctx context.Context, snapshots <-chan model.Snapshot, policies <-chan *policy.Policy, listeners ...Listener) error {
	c.setListeners(listeners)
	pending := map[string]bool{}
	for _, a := range c.o.Adapters {
		pending[a] = true
	}
	var giveUp <-chan time.Time
	if len(pending) > 0 {
		wait := c.o.FirstSnapshotWait
		if wait <= 0 {
			wait = DefaultFirstSnapshotWait
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		giveUp = t.C
		c.setWaiting(pending, false)
		c.o.Logger.Info("holding configurations back until every adapter has sent its first snapshot", "adapters", keys(pending), "at_most", wait)
	}
	// dirty survives the loop: what changes while configurations are held
	// back is compiled when the wait ends.
	dirty := false
	gaveUp := false
	apply := func(s model.Snapshot) {
		c.unisolated.warn(c.o.Logger, s)
		dirty = c.applySnapshot(s) || dirty
		if pending[s.Adapter] {
			delete(pending, s.Adapter)
			dirty = true
			c.setWaiting(pending, gaveUp)
			if len(pending) == 0 && !gaveUp {
				giveUp = nil
				c.o.Logger.Info("every adapter has sent its first snapshot; serving configurations")
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-snapshots:
			apply(s)
		case p := <-policies:
			dirty = c.applyPolicy(p) || dirty
		case <-c.health.wake:
			dirty = true
		case <-giveUp:
			giveUp = nil
			c.o.Logger.Warn("serving configurations without the first snapshot of some adapters: they may lack those adapters' endpoints until they report",
				"adapters", keys(pending))
			gaveUp = true
			c.setWaiting(pending, true)
			dirty = true
		}
		// Drain whatever else is waiting so a burst compiles once.
	drain:
		for {
			select {
			case s := <-snapshots:
				apply(s)
			case p := <-policies:
				dirty = c.applyPolicy(p) || dirty
			default:
				break drain
			}
		}
		if dirty && (gaveUp || len(pending) == 0) {
			c.rebuild()
			dirty = false
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *Controller) setWaiting(pending map[string]bool, gaveUp bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiting, c.gaveUp = keys(pending), gaveUp && len(pending) > 0
}

// Waiting returns the adapters whose first snapshot the controller waits
// for (configurations are held back meanwhile), or, when gaveUp, the ones
// it stopped waiting for when FirstSnapshotWait passed (configurations are
// served without their endpoints until they report).
func (c *Controller) Waiting() (adapters []string, gaveUp bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.waiting), c.gaveUp
}

func (c *Controller) applySnapshot(s model.Snapshot) bool {
	changed, problems := c.o.Registry.Update(s)
	drops := make([]model.Dropped, 0, len(s.Dropped)+len(problems))
	for _, d := range s.Dropped {
		d.Adapter = s.Adapter
		drops = append(drops, d)
	}
	for _, p := range problems {
		c.o.Logger.Warn("skipping workload record", "adapter", p.Adapter, "instance", p.ID, "reason", p.Reason, "err", p.Err)
		drops = append(drops, p.Dropped())
	}
	c.setDrops(s.Adapter, drops)
	if changed {
		c.o.Logger.Info("snapshot", "adapter", s.Adapter, "instances", len(s.Instances)-len(problems))
	}
	return changed
}

func (c *Controller) applyPolicy(p *policy.Policy) bool {
	if p == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.policy != nil && c.policy.Mesh.TrustDomain != p.Mesh.TrustDomain {
		c.o.Logger.Warn("the trust domain changed; sidecars keep their certificates until they renew, so restart them to move to the new domain",
			"old", c.policy.Mesh.TrustDomain, "new", p.Mesh.TrustDomain)
	}
	if p.Mesh.Permissive() && (c.policy == nil || !c.policy.Mesh.Permissive()) {
		c.o.Logger.Warn(`identity_binding is "permissive": any workload that registers a service name gets that service's identity and traffic; every such instance is logged and listed in status. Add a binding to every service and remove identity_binding`)
	}
	c.policy = p
	return true
}

func (c *Controller) rebuild() {
	c.mu.Lock()
	p := c.policy
	if p == nil {
		c.mu.Unlock()
		return
	}
	c.builds++
	c.mu.Unlock()
	// Only the configurations the changes touch are compiled again, and
	// only those go to the listeners (incremental.go), but for the first
	// build they see, which holds every configuration.
	// Sidecars' health reports overlay the scheduler's health (health.go).
	entries := c.health.apply(c.o.Registry.Entries())
	start := time.Now()
	b, total := c.inc.build(p, entries, len(c.listeners) > 0)
	b.Took = time.Since(start)
	c.noteUnbound(p, c.inc.unbound())
	c.noteUndeclared(append(compile.UndeclaredDrops(p, entries), compile.ProxyModeDrops(p, entries)...))
	n := 0
	if len(c.listeners) > 0 {
		n = c.publish(b)
		c.o.Logger.Info("configurations compiled", "instances", total, "changed", n)
	}
	if c.o.OnBuild != nil {
		c.o.OnBuild(total, n)
	}
}

// setListeners makes ls the listeners of the builds to come; the next
// build they get holds every configuration.
func (c *Controller) setListeners(ls []Listener) {
	c.listeners = ls
	c.inc.fed = false
}

// publish hands b to every listener and returns the most configurations
// any of them found changed.
func (c *Controller) publish(b Build) int {
	n := 0
	for _, l := range c.listeners {
		n = max(n, l.Publish(b))
	}
	return n
}

// Allowed implements meshserver.Binder with the policy in force: nil when a
// binding of in's service names its workload; in permissive mode an error
// wrapping meshserver.ErrPermissive; else the policy's UnboundError, which
// names the workload, the service and the binding to add.
func (c *Controller) Allowed(adapter string, in model.Instance) error {
	p := c.Policy()
	if p == nil {
		return status.Error(codes.Unavailable, "the controller has no policy yet; retry shortly")
	}
	err := p.Bound(in.Service, in.Workload)
	if err != nil && p.Mesh.Permissive() {
		return fmt.Errorf("%w: %w", meshserver.ErrPermissive, err)
	}
	return err
}

// Unbound returns the instances whose workload no binding of their service
// names, as of the last compilation, and whether the mesh's identity
// binding is permissive (they are then served, with a warning) rather
// than strict (they get no certificate and no traffic).
func (c *Controller) Unbound() (skipped []compile.Skipped, permissive bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]compile.Skipped(nil), c.unbound...), c.policy != nil && c.policy.Mesh.Permissive()
}

// noteUnbound records the unbound instances of a compilation and logs each
// new one once: an error in strict mode, a loud warning in permissive mode.
func (c *Controller) noteUnbound(p *policy.Policy, unbound []compile.Skipped) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mode := string(policy.BindingStrict)
	if p.Mesh.Permissive() {
		mode = string(policy.BindingPermissive)
	}
	// Most rebuilds leave the list as it was (every instance of a
	// permissive mesh may be on it): nothing new to log.
	if mode == c.loggedMode && slices.EqualFunc(unbound, c.unbound, compile.Skipped.Equal) {
		return
	}
	c.unbound, c.loggedMode = unbound, mode
	now := make(map[string]bool, len(unbound))
	for _, u := range unbound {
		key := mode + "\x00" + u.Adapter + "\x00" + u.Instance + "\x00" + u.Detail
		now[key] = true
		if c.logged[key] {
			continue
		}
		if p.Mesh.Permissive() {
			c.o.Logger.Warn("UNBOUND WORKLOAD SERVED: identity_binding is permissive, so this instance gets its service's identity and traffic although no binding names its workload; add the binding, then remove identity_binding",
				"adapter", u.Adapter, "instance", u.Instance, "service", u.Service, "reason", u.Reason, "detail", u.Detail)
		} else {
			c.o.Logger.Error("instance skipped: "+u.Reason+"; it gets no certificate and no traffic",
				"adapter", u.Adapter, "instance", u.Instance, "service", u.Service, "detail", u.Detail)
		}
	}
	c.logged = now
}

var (
	_ meshserver.Workloads = (*Controller)(nil)
	_ meshserver.Binder    = (*Controller)(nil)
)

// Static answers meshserver.Workloads from reg with a fixed trust domain,
// for a config server fed without a controller loop (benchmarks).
func Static(reg *registry.Registry, trustDomain string) meshserver.Workloads {
	return static{reg: reg, trustDomain: trustDomain}
}

type static struct {
	reg         *registry.Registry
	trustDomain string
}

func (s static) TrustDomain() string { return s.trustDomain }

func (s static) Lookup(adapter, id string) (model.Instance, bool) { return s.reg.Lookup(adapter, id) }

func (s static) Instance(id string) (string, model.Instance, bool) {
	e, ok := s.reg.Find(id)
	return e.Adapter, e.Instance, ok
}
