package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

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
}

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
	for {
		dirty := false
		select {
		case <-ctx.Done():
			return nil
		case s := <-snapshots:
			dirty = c.applySnapshot(s) || dirty
		case p := <-policies:
			dirty = c.applyPolicy(p) || dirty
		}
		// Drain whatever else is waiting so a burst compiles once.
	drain:
		for {
			select {
			case s := <-snapshots:
				dirty = c.applySnapshot(s) || dirty
			case p := <-policies:
				dirty = c.applyPolicy(p) || dirty
			default:
				break drain
			}
		}
		if dirty {
			c.rebuild()
		}
	}
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
	entries := c.o.Registry.Entries()
	cfgs := compile.Compile(p, entries)
	c.noteUnbound(p, compile.Unbound(p, entries))
	n := 0
	if c.o.Server != nil {
		n = c.o.Server.Update(cfgs)
		c.o.Logger.Info("configurations compiled", "instances", len(cfgs), "changed", n)
	}
	if c.o.OnBuild != nil {
		c.o.OnBuild(len(cfgs), n)
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
