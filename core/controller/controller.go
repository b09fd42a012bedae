package controller

import (
	"context"
	"log/slog"
	"sync"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
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
	cfgs := compile.Compile(p, c.o.Registry.Entries())
	n := 0
	if c.o.Server != nil {
		n = c.o.Server.Update(cfgs)
		c.o.Logger.Info("configurations compiled", "instances", len(cfgs), "changed", n)
	}
	if c.o.OnBuild != nil {
		c.o.OnBuild(len(cfgs), n)
	}
}
