package controller

import (
	"sync"
	"time"

	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/registry"
)

// DefaultSidecarHealthGrace is how long a sidecar's last health report
// stays in force after its config stream ended (Options.SidecarHealthGrace).
const DefaultSidecarHealthGrace = time.Minute

// sidecarHealth is the overlay of sidecars' health reports on the
// scheduler's health: an instance whose sidecar reports its app failing is
// compiled as critical (so it leaves every caller's endpoints) whatever
// its scheduler says. It is fed from the config server's streams
// (meshserver.Health) and read by rebuild (apply) and by status.
type sidecarHealth struct {
	grace time.Duration
	// wake tells Run that the overlay changed: an instance turned failing
	// or passing, or a failing report expired.
	wake chan struct{}

	mu      sync.Mutex
	reports map[string]*healthReport
	// touched are the instances whose report came or went since rebuild
	// last took them (take): the incremental build looks at them again.
	touched map[string]bool
}

// healthReport is the last report of one instance's sidecar.
type healthReport struct {
	healthy bool
	reason  string
	// gone is set while the instance has no config stream: the report
	// expires grace after it (timer).
	gone  bool
	timer *time.Timer
}

func newSidecarHealth(grace time.Duration) *sidecarHealth {
	if grace <= 0 {
		grace = DefaultSidecarHealthGrace
	}
	return &sidecarHealth{grace: grace, wake: make(chan struct{}, 1), reports: map[string]*healthReport{}}
}

func (h *sidecarHealth) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// report takes instance id's latest report; a change between failing and
// passing wakes Run and is reported.
func (h *sidecarHealth) report(id string, healthy bool, reason string) (changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.reports[id]
	if old != nil && old.timer != nil {
		old.timer.Stop()
	}
	h.reports[id] = &healthReport{healthy: healthy, reason: reason}
	h.touch(id)
	if (old == nil && !healthy) || (old != nil && old.healthy != healthy) {
		h.signal()
		return true
	}
	return false
}

// streamGone starts the clock on id's report: unless the sidecar reports
// again within grace, the report is dropped and the scheduler's health
// alone counts again.
func (h *sidecarHealth) streamGone(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.reports[id]
	if r == nil || r.gone {
		return
	}
	r.gone = true
	r.timer = time.AfterFunc(h.grace, func() { h.expire(id, r) })
}

// expire drops r, id's report, if it is still the one in force and its
// stream is still gone.
func (h *sidecarHealth) expire(id string, r *healthReport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reports[id] != r || !r.gone {
		return
	}
	delete(h.reports, id)
	h.touch(id)
	if !r.healthy {
		h.signal()
	}
}

func (h *sidecarHealth) touch(id string) {
	if h.touched == nil {
		h.touched = map[string]bool{}
	}
	h.touched[id] = true
}

// take returns the instances touched since the last take (or apply).
func (h *sidecarHealth) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.touched))
	for id := range h.touched {
		out = append(out, id)
	}
	clear(h.touched)
	return out
}

// overlay is apply for one entry that is in the registry.
func (h *sidecarHealth) overlay(e *registry.Entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.reports[e.Instance.ID]; r != nil && !r.healthy && e.Instance.Health != model.HealthCritical {
		e.Instance.Health = model.HealthCritical
		e.Rev = 0
	}
}

// forget drops the report of an instance that is not in the registry.
func (h *sidecarHealth) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.reports[id]; r != nil {
		if r.timer != nil {
			r.timer.Stop()
		}
		delete(h.reports, id)
	}
}

// apply returns entries with every instance whose sidecar reports it
// failing made critical, and forgets the reports of instances that left.
// An entry it changes gets revision 0, so the incremental compiler
// compares it whole (core/compile.Compiler.Update) and sees a health
// change as a changed record; entries is changed in place.
func (h *sidecarHealth) apply(entries []registry.Entry) []registry.Entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.touched)
	if len(h.reports) == 0 {
		return entries
	}
	seen := make(map[string]bool, len(h.reports))
	for i := range entries {
		e := &entries[i]
		r := h.reports[e.Instance.ID]
		if r == nil {
			continue
		}
		seen[e.Instance.ID] = true
		if !r.healthy && e.Instance.Health != model.HealthCritical {
			e.Instance.Health = model.HealthCritical
			e.Rev = 0
		}
	}
	for id, r := range h.reports {
		if !seen[id] {
			if r.timer != nil {
				r.timer.Stop()
			}
			delete(h.reports, id)
		}
	}
	return entries
}

// get returns id's report in force.
func (h *sidecarHealth) get(id string) (healthy bool, reason string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.reports[id]
	if r == nil {
		return false, "", false
	}
	return r.healthy, r.reason, true
}

// ReportHealth implements meshserver.Health: instance id's sidecar reports
// its app healthy or failing (reason says why). A failing instance is
// critical in every configuration compiled from now on, whatever its
// scheduler says, until its sidecar reports it passing, it leaves the
// registry, or its sidecar has had no config stream for
// Options.SidecarHealthGrace.
func (c *Controller) ReportHealth(id string, healthy bool, reason string) {
	if !c.health.report(id, healthy, reason) {
		return
	}
	if healthy {
		c.o.Logger.Info("sidecar reports its app passing its checks again: the scheduler's health counts again", "instance", id)
	} else {
		c.o.Logger.Warn("sidecar reports its app failing its checks: taking the instance out of every caller's endpoints", "instance", id, "reason", reason)
	}
}

// StreamGone implements meshserver.Health: instance id's sidecar has no
// config stream any more; its last report stays in force for
// Options.SidecarHealthGrace.
func (c *Controller) StreamGone(id string) { c.health.streamGone(id) }

// SidecarHealth returns the last health report of instance id's sidecar
// in force, if any: whether its app passes its checks, and why not.
func (c *Controller) SidecarHealth(id string) (healthy bool, reason string, ok bool) {
	return c.health.get(id)
}

var _ meshserver.Health = (*Controller)(nil)
