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
	// Server receives every compiled set of configurations. It may be set
	// after New (the server needs the controller's TrustDomain).
	Server *meshserver.Server
	Logger *slog.Logger
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
}

// DefaultFirstSnapshotWait is how long the controller holds configurations
// back for an adapter's first snapshot after a (re)start.
const DefaultFirstSnapshotWait = 30 * time.Second

// Controller merges snapshots and policy into proxy configurations.
type Controller struct {
	o Options

	mu     sync.RWMutex
	policy *policy.Policy
	builds int
	// unbound are the instances whose workload no binding of their
	// service names, as of the last compilation; logged holds the ones
	// already logged, so each is logged once.
	unbound []compile.Skipped
	logged  map[string]bool
	// waiting are the adapters whose first snapshot the controller still
	// waits for; gaveUp, that the wait passed without them.
	waiting []string
	gaveUp  bool
	inc     incremental // rebuild's compiler; only rebuild uses it
}

// New returns a controller.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Controller{o: o}
}

// SetServer sets the config server the controller feeds.
func (c *Controller) SetServer(s *meshserver.Server) { c.o.Server = s }

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

// Run consumes snapshots and policies until ctx is done.
func (c *Controller) Run(ctx context.Context, snapshots <-chan model.Snapshot, policies <-chan *policy.Policy) error {
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
	for _, p := range problems {
		c.o.Logger.Warn("skipping workload record", "adapter", p.Adapter, "instance", p.ID, "err", p.Err)
	}
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
	// only those go to the server (incremental.go).
	total, n := c.inc.build(p, c.o.Registry.Entries(), c.o.Server)
	c.noteUnbound(p, c.inc.unbound())
	if c.o.Server != nil {
		c.o.Logger.Info("configurations compiled", "instances", total, "changed", n)
	}
	if c.o.OnBuild != nil {
		c.o.OnBuild(total, n)
	}
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
	c.unbound = unbound
	mode := string(policy.BindingStrict)
	if p.Mesh.Permissive() {
		mode = string(policy.BindingPermissive)
	}
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
