package nomad

import (
	"context"
	"fmt"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Watch sends a full snapshot of the meshed Nomad services now and after
// every change. Changes are learnt from the event stream (topics Service,
// Allocation, Job and Deployment), or from blocking queries when the stream cannot be
// had; either only marks the state dirty, and the snapshot is rebuilt from
// Nomad's lists, gathered over a short settle time. A Nomad that does not
// answer is reported (a warning with the last snapshot, which stays in
// force) and asked again with backoff.
func (a *Adapter) Watch(ctx context.Context, _ *sdk.WatchRequest, events chan<- sdk.WatchEvent) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	changed := sdk.NewSignal()
	go a.listen(ctx, cfg, changed.Notify)
	changed.Notify()
	warned := map[string]bool{} // instances logged as running without isolation
	cache, poll := newCheckCache(), &checkPoller{}
	failing := map[string]string{} // instances kept out by their checks, and why
	go poll.run(ctx, cfg, cfg.checkPoll, changed.Notify)
	loop := sdk.Loop[State]{
		Fetch: func(ctx context.Context) (State, error) {
			st, err := fetchState(ctx, cfg, cache)
			if err == nil {
				poll.track(st)
			}
			return st, err
		},
		Translate: func(st State) (model.Snapshot, []sdk.Diagnostic) {
			snap, diags := Translate(st)
			warnHostNetworking(a.log, snap.Instances, warned)
			logChecks(a.log, st, failing)
			return snap, diags
		},
		Debounce: a.settle, // gather the burst of events one change makes
		Resync:   cfg.resync,
		Backoff:  backoff.New(a.minBackoff, a.maxBackoff),
		Failing:  func(err error, retry time.Duration) sdk.Diagnostic { return unreachableDiag(cfg, err, retry) },
		Log:      a.log.With("address", cfg.addr),
	}
	return loop.Run(ctx, changed, events)
}

// warnHostNetworking logs, once per instance, every instance whose group
// uses host networking: its app's port is reachable beside its sidecar.
// warned is trimmed to the instances still there.
func warnHostNetworking(log hclog.Logger, ins []model.Instance, warned map[string]bool) {
	seen := make(map[string]bool, len(ins))
	for _, in := range ins {
		seen[in.ID] = true
		if in.Isolation == model.IsolationNone && !warned[in.ID] {
			warned[in.ID] = true
			log.Warn("ISOLATION OFF: this allocation uses host networking, so its app's port can be reached beside its sidecar; use bridge networking (weft nomad render does by default)",
				"instance", in.ID, "job", in.Labels[FactJob], "group", in.Labels[FactGroup])
		}
	}
	for id := range warned {
		if !seen[id] {
			delete(warned, id)
		}
	}
}

func unreachableDiag(cfg *config, err error, retry time.Duration) sdk.Diagnostic {
	if isRefusal(err) {
		d := tokenDiag(cfg, err)
		d.Severity = sdk.SeverityWarning
		d.Detail += fmt.Sprintf(" The last snapshot stays in force; retrying in %v.", retry)
		return d
	}
	return sdk.Warningf("Nomad does not answer",
		"Reading Nomad at %s: %v. The last snapshot stays in force; retrying in %v.", cfg.addr, err, retry)
}

// fetchState reads every native service registration, the allocations
// behind them, and the check results of those that declare checks (the
// declared checks of each job version come from cache).
func fetchState(ctx context.Context, cfg *config, cache *checkCache) (State, error) {
	q := func() *api.QueryOptions { return (&api.QueryOptions{Namespace: cfg.namespace}).WithContext(ctx) }
	lists, _, err := cfg.client.Services().List(q())
	if err != nil {
		return State{}, fmt.Errorf("listing Nomad services: %w", err)
	}
	var st State
	for _, l := range lists {
		for _, s := range l.Services {
			opts := q()
			opts.Namespace = l.Namespace
			regs, _, err := cfg.client.Services().Get(s.ServiceName, opts)
			if err != nil {
				return State{}, fmt.Errorf("reading Nomad service %s in namespace %s: %w", s.ServiceName, l.Namespace, err)
			}
			st.Services = append(st.Services, regs...)
		}
	}
	if len(st.Services) == 0 {
		return st, nil
	}
	aq := q()
	aq.Params = map[string]string{"resources": "true", "task_states": "true"}
	aq.Filter = `DesiredStatus == "run"`
	allocs, _, err := cfg.client.Allocations().List(aq)
	if err != nil {
		return State{}, fmt.Errorf("listing Nomad allocations: %w", err)
	}
	st.Allocs = allocs
	if cfg.advertise == "alloc" {
		if st.AllocAddresses, err = allocAddresses(ctx, cfg, allocs); err != nil {
			return State{}, err
		}
	}
	dq := q()
	dq.Filter = `Status == "running"`
	deps, _, err := cfg.client.Deployments().List(dq)
	if err != nil {
		return State{}, fmt.Errorf("listing Nomad deployments: %w", err)
	}
	st.Deployments = deps
	checks, err := fetchChecks(ctx, cfg, cache, st.Services, allocs)
	if err != nil {
		return State{}, err
	}
	if len(checks) > 0 {
		st.Checks = checks
	}
	return st, nil
}

// allocAddresses reads the own address of every allocation with a
// network namespace (bridge or CNI), for the advertise = "alloc" option:
// the allocation list does not carry it.
func allocAddresses(ctx context.Context, cfg *config, allocs []*api.AllocationListStub) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range allocs {
		if a == nil || !inNamespace(a) {
			continue
		}
		full, _, err := cfg.client.Allocations().Info(a.ID, (&api.QueryOptions{Namespace: a.Namespace}).WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("reading Nomad allocation %s: %w", a.ID, err)
		}
		if full.NetworkStatus != nil && full.NetworkStatus.Address != "" {
			out[a.ID] = full.NetworkStatus.Address
		}
	}
	return out, nil
}

// listen calls mark whenever Nomad reports a change: from the event
// stream while it works, else from blocking queries for a while before
// the stream is tried again. It returns when ctx is done.
func (a *Adapter) listen(ctx context.Context, cfg *config, mark func()) {
	b := backoff.New(a.minBackoff, a.maxBackoff)
	for ctx.Err() == nil {
		if cfg.eventStream {
			start := time.Now()
			err := a.stream(ctx, cfg, mark)
			if ctx.Err() != nil {
				return
			}
			if time.Since(start) > 10*time.Second {
				b.Reset() // it worked for a while
			}
			a.log.Warn("the Nomad event stream failed; using blocking queries meanwhile", "error", err, "retry_stream_in", a.fallback)
			mark() // events may have been missed
		}
		err := a.blockingQueries(ctx, cfg, mark, a.fallback)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d := b.Next()
			a.log.Warn("blocking queries on Nomad failed", "error", err, "retry_in", d)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			mark()
			continue
		}
		b.Reset()
	}
}

// stream follows the event stream until it fails.
func (a *Adapter) stream(ctx context.Context, cfg *config, mark func()) error {
	topics := map[api.Topic][]string{api.TopicService: {"*"}, api.TopicAllocation: {"*"}, api.TopicJob: {"*"}, api.TopicDeployment: {"*"}}
	ch, err := cfg.client.EventStream().Stream(ctx, topics, 0, &api.QueryOptions{Namespace: cfg.namespace})
	if err != nil {
		return fmt.Errorf("opening the Nomad event stream: %w", err)
	}
	mark() // anything between the last rebuild and the subscription
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case evs, ok := <-ch:
			if !ok {
				return fmt.Errorf("the Nomad event stream closed")
			}
			if evs.Err != nil {
				return fmt.Errorf("reading the Nomad event stream: %w", evs.Err)
			}
			if len(evs.Events) > 0 {
				mark()
			}
		}
	}
}

// blockingQueries waits on the indexes of the service and allocation lists
// for d, calling mark when either moves.
func (a *Adapter) blockingQueries(ctx context.Context, cfg *config, mark func(), d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	errs := make(chan error, 2)
	block := func(list func(q *api.QueryOptions) (uint64, error)) {
		var index uint64
		for {
			q := (&api.QueryOptions{Namespace: cfg.namespace, WaitIndex: index, WaitTime: 5 * time.Minute}).WithContext(ctx)
			next, err := list(q)
			if ctx.Err() != nil {
				errs <- nil
				return
			}
			if err != nil {
				errs <- err
				return
			}
			if index != 0 && next != index {
				mark()
			}
			if next < index {
				next = 0 // Nomad's index went backwards (a new cluster): start over
			}
			index = next
		}
	}
	go block(func(q *api.QueryOptions) (uint64, error) {
		_, meta, err := cfg.client.Services().List(q)
		if err != nil {
			return 0, fmt.Errorf("blocking on Nomad services: %w", err)
		}
		return meta.LastIndex, nil
	})
	go block(func(q *api.QueryOptions) (uint64, error) {
		q.Params = map[string]string{"task_states": "false"}
		_, meta, err := cfg.client.Allocations().List(q)
		if err != nil {
			return 0, fmt.Errorf("blocking on Nomad allocations: %w", err)
		}
		return meta.LastIndex, nil
	})
	err := <-errs
	cancel()
	if err2 := <-errs; err == nil {
		err = err2
	}
	return err
}
