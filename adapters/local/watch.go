package local

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// OptionWatch names the data directory of the local adapter that runs the
// workloads (DATA_DIR/adapters/local of its controller replica, where its
// state file is). With it, this
// adapter is a watcher: it starts, stops, adopts and probes nothing, and
// reports the instances the owner records in its state file, so that
// every replica of a raft cluster knows the same instances while one
// replica runs them.
const OptionWatch = "watch"

// watchOwner is Watch for a watcher (option watch): every procPoll it
// reads the workloads file (re-planning when it changed) and the owner's
// state file, and sends a snapshot when what they say changed (sdk.Loop
// drops equal snapshots). An instance is reported once the owner has
// recorded it, at the address the owner gave it; it is passing while the
// recorded app and sidecar still run what the owner started (their pids
// are alive with the recorded command lines) and the owner's last check
// result, if the instance has a check, is passing. The owner's death
// changes nothing: its processes keep running, and its restarted adapter
// adopts them and records the same pids.
func (a *Adapter) watchOwner(ctx context.Context, events chan<- sdk.WatchEvent) error {
	changed := sdk.NewSignal()
	go func() {
		t := time.NewTicker(a.procPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				changed.Notify()
			}
		}
	}()
	loop := sdk.Loop[localState]{
		Fetch: func(context.Context) (localState, error) {
			a.mu.Lock()
			cfg, closed := a.cfg, a.closed
			a.mu.Unlock()
			if closed {
				return localState{}, sdk.Stop(nil)
			}
			cfg = a.replan(cfg)
			st, err := readState(cfg.watch)
			if err != nil {
				return localState{}, err
			}
			return localState{file: cfg.file, statuses: watchedStatuses(cfg.specs, st), diags: cfg.warnings}, nil
		},
		Translate: translate,
	}
	changed.Notify()
	return loop.Run(ctx, changed, events)
}

// replan re-reads the workloads file and, when it changed and plans
// without errors, makes the new plan the adapter's configuration. A file
// with errors keeps the last good plan (the owner keeps its instances too).
func (a *Adapter) replan(cfg *config) *config {
	src, hd := readWorkloads(cfg.file)
	if hd.HasErrors() || sha256.Sum256(src) == cfg.srcHash {
		return cfg
	}
	next, _ := a.prepare(cfg.req, src, nil)
	if next == nil {
		return cfg
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return cfg
	}
	a.cfg = next
	return next
}

// watchedStatuses is what a watcher knows of each planned instance that
// the owner's state records for the same service.
func watchedStatuses(specs []instanceSpec, st map[string]stateEntry) []instanceStatus {
	out := make([]instanceStatus, 0, len(specs))
	for _, s := range specs {
		e, ok := st[s.ID]
		if !ok || e.Service != s.Service || e.Namespace != s.Namespace {
			continue
		}
		s.Address = e.Address
		// The owner's guard is not visible from here (doc.go).
		is := instanceStatus{Spec: s, Isolation: model.IsolationNone}
		if e.App.PID != 0 && runs(e.App.PID, e.App.Argv) {
			is.AppRunning, is.AppPID = true, e.App.PID
		}
		if e.Proxy.PID != 0 && runs(e.Proxy.PID, e.Proxy.Argv) {
			is.ProxyRunning, is.ProxyPID = true, e.Proxy.PID
		}
		if s.Check != nil {
			is.Check = checkResult{Status: e.Check}
		}
		out = append(out, is)
	}
	return out
}
