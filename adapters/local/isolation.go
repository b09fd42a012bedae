package local

import (
	"slices"
	"syscall"
	"time"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// processCred returns the runner's Cred: with the guard possible (root,
// Linux, nft), every app and sidecar runs with a group of its own, whether
// or not the rules are on (the option isolation = none, an edge service),
// so that turning them on needs no restart. A shared proxy (node or
// application proxy) has the group of the sidecar its first instance would
// have had (instanceSpec.ProxyAddr), so each proxy process, shared or not,
// has a group of its own.
func processCred(possible bool) func(instanceSpec, string) (*syscall.Credential, error) {
	if !possible {
		return nil
	}
	return func(s instanceSpec, kind string) (*syscall.Credential, error) {
		if kind == "proxy" && s.ProxyAddr != "" {
			// A shared proxy's group: that of its first instance's sidecar
			// (nodeproxy.go), for the proxy and for probes made as it.
			return credential(s.ProxyAddr, kind)
		}
		return credential(s.Address, kind)
	}
}

// applyGuard brings the guard in line with cfg: it creates the guard on
// first use, installs the rules of cfg's instances, or removes every rule
// when isolation is off. Called before the processes change, with the
// configuration they ran until then as old, it keeps the rules of old's
// instances too, so that an instance being stopped stays guarded until it
// has stopped; called again after, with old nil, it drops them. A failure
// leaves the instances unprotected, says so in the diagnostics, and is
// retried by pollGuard.
func (a *Adapter) applyGuard(cfg, old *config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cfg.noGuard != "" {
		return
	}
	if a.guard == nil {
		if cfg.isolation != isolationGuard {
			return
		}
		g, err := newGuard(cfg.nft)
		if err != nil {
			if a.guardErr == nil || a.guardErr.Error() != err.Error() {
				a.log.Error("ISOLATION OFF: cannot start the guard; every app port and outbound port is open to any local process", "error", err)
			}
			a.guardErr = err
			return
		}
		a.guard = g
		a.log.Info("guard on: only an instance's sidecar reaches its app port, only its app its outbound ports", "table", g.table)
	}
	var specs []instanceSpec
	if cfg.isolation == isolationGuard {
		specs = cfg.specs
	}
	if old != nil && old.isolation == isolationGuard {
		for _, s := range old.specs {
			// An instance whose proxy changes (sidecar to shared proxy, or
			// another shared proxy's group) keeps only its new rule: the
			// proxy being replaced is stopping.
			if !slices.ContainsFunc(specs, func(n instanceSpec) bool { return n.ID == s.ID && n.Address == s.Address && n.Port == s.Port }) {
				specs = append(specs, s)
			}
		}
	}
	a.guardErr = a.guard.setSpecs(specs, cfg.edge, cfg.egress == egressDeny)
	if a.guardErr != nil {
		a.log.Error("ISOLATION OFF: cannot apply the guard's rules; app ports and outbound ports are open", "error", a.guardErr)
	}
}

// diagnostics are the problems sent with every snapshot: the
// configuration's warnings and the guard's failure, if any.
func (a *Adapter) diagnostics(cfg *config) []sdk.Diagnostic {
	a.mu.Lock()
	err := a.guardErr
	a.mu.Unlock()
	ds := slices.Clone(cfg.warnings)
	if err != nil {
		ds = append(ds, sdk.Warningf("Isolation off",
			"The guard failed: %v. Every instance's app port and outbound ports are open to any local process until it works again; the adapter retries.", err))
	}
	return ds
}

// isolation is what the snapshot says of an instance.
func (a *Adapter) isolation(s instanceSpec) model.Isolation {
	a.mu.Lock()
	cfg, g := a.cfg, a.guard
	a.mu.Unlock()
	if cfg == nil || cfg.isolation != isolationGuard {
		return model.IsolationNone
	}
	return g.isolation(s.Service)
}

// pollGuard retries, every procPoll, an apply of the rules that failed
// (or a guard that could not start), and says so when it works again.
// The rules need no other upkeep: they cover every port of an instance's
// address, so an outbound listener the policy adds later is guarded from
// the moment it opens.
func (a *Adapter) pollGuard(r *runner, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(a.procPoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		a.mu.Lock()
		g, cfg, prevErr := a.guard, a.cfg, a.guardErr
		a.mu.Unlock()
		if cfg == nil || cfg.isolation != isolationGuard || cfg.noGuard != "" {
			continue
		}
		if g == nil {
			// The guard could not start: try again.
			a.applyGuard(cfg, nil)
			a.mu.Lock()
			started := a.guard != nil
			a.mu.Unlock()
			if started {
				a.log.Info("guard started after all")
				r.setDiags(a.diagnostics(cfg))
				r.poke()
			}
			continue
		}
		if prevErr == nil {
			continue
		}
		err := g.retry()
		a.mu.Lock()
		a.guardErr = err
		a.mu.Unlock()
		if err == nil {
			a.log.Info("guard rules applied again")
			r.setDiags(a.diagnostics(cfg))
			r.poke()
		}
	}
}
