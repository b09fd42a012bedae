package controller

import (
	"slices"
	"strings"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/model"
)

// Dropped lists, sorted by adapter, instance and reason, every instance
// left out of the mesh for a reason, or an upstream port of it that was
// ignored: what each adapter's latest snapshot says it skipped (a Mesos
// task without a mesh port), the records the registry refused (no service
// name, an unnamed port, a duplicate ID), and the upstream ports the policy
// in force does not declare. Nothing is dropped without a word: the admin
// API's status lists them and counts them per reason. counts covers every
// one; the list holds at most MaxDroppedListed, so a scheduler full of bad
// records cannot swell the status without bound.
func (c *Controller) Dropped() (listed []model.Dropped, counts map[string]int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []model.Dropped
	for _, ds := range c.drops {
		out = append(out, ds...)
	}
	out = append(out, c.undeclared...)
	if len(out) == 0 {
		return nil, nil
	}
	counts = map[string]int{}
	for _, d := range out {
		counts[d.Reason]++
	}
	slices.SortFunc(out, func(a, b model.Dropped) int {
		if n := strings.Compare(a.Adapter, b.Adapter); n != 0 {
			return n
		}
		if n := strings.Compare(a.Instance, b.Instance); n != 0 {
			return n
		}
		if n := strings.Compare(a.Reason, b.Reason); n != 0 {
			return n
		}
		return strings.Compare(a.Detail, b.Detail)
	})
	if len(out) > MaxDroppedListed {
		out = out[:MaxDroppedListed]
	}
	return out, counts
}

// MaxDroppedListed bounds the list Dropped returns.
const MaxDroppedListed = 500

// setDrops replaces what adapter's snapshot and the registry dropped of it.
func (c *Controller) setDrops(adapter string, drops []model.Dropped) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops == nil {
		c.drops = map[string][]model.Dropped{}
	}
	if len(drops) == 0 {
		delete(c.drops, adapter)
		return
	}
	c.drops[adapter] = drops
}

// noteUndeclared records the upstream ports the last compilation ignored,
// and the instances whose proxy mode the policy does not give them
// (compile.ProxyModeDrops), and logs each new one once.
func (c *Controller) noteUndeclared(drops []model.Dropped) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[model.Dropped]bool, len(c.undeclared))
	for _, d := range c.undeclared {
		seen[d] = true
	}
	for _, d := range drops {
		switch {
		case seen[d]:
		case d.Reason == compile.ReasonProxyModeRefused || d.Reason == compile.ReasonProxyModeMismatch: // proxymode.go
			c.o.Logger.Warn("proxy mode mismatch: the scheduler and the policy's proxy_mode disagree", "adapter", d.Adapter, "instance", d.Instance, "detail", d.Detail)
		default:
			c.o.Logger.Warn("upstream port ignored: the policy does not declare it", "adapter", d.Adapter, "instance", d.Instance, "detail", d.Detail)
		}
	}
	c.undeclared = drops
}
