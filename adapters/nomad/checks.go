package nomad

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/core/model"
)

// Nomad's check statuses (structs.CheckSuccess and friends; the api
// package has no constants for them).
const (
	checkSuccess = "success"
	checkFailure = "failure"
	checkPending = "pending" // declared, not run yet ("nomad: waiting to run")
)

// checkFetchers bounds how many allocations' check results are read at
// once; checkFetchTimeout bounds each read.
const (
	checkFetchers     = 4
	checkFetchTimeout = 5 * time.Second
)

// AllocChecks is what the adapter knows of the Nomad service checks of one
// running allocation whose group declares any on a native service.
type AllocChecks struct {
	// Declared counts, by service name as the job writes it, the checks
	// of the group's native services (group and task level) in the job
	// version the allocation runs.
	Declared map[string]int
	// Results are Nomad's results, by check ID
	// (/v1/client/allocation/:alloc_id/checks): each has the Service, the
	// Check's name and a Status of success, failure or pending (declared,
	// not run yet). Nomad runs a check first half an interval after the
	// allocation starts, then every interval.
	Results api.AllocCheckStatuses `json:",omitempty"`
	// Err says why Results could not be read ("" when they were).
	Err string `json:",omitempty"`
}

// checksHealth is the health the checks of service give an allocation
// whose tasks all run: critical when one of its checks fails, or has no
// result yet (pending, or declared and not reported); warning when the
// results could not be read; passing when every one passes, or when the
// service declares none. why says what decided.
func checksHealth(c *AllocChecks, service string) (h model.Health, why string) {
	if c == nil || c.Declared[service] == 0 {
		return model.HealthPassing, ""
	}
	if c.Err != "" {
		return model.HealthWarning, "its check results cannot be read: " + c.Err
	}
	var ids []string
	for id, r := range c.Results {
		if r.Service == service {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := c.Results[id]
		switch r.Status {
		case checkSuccess:
		case checkFailure:
			out := strings.Join(strings.Fields(r.Output), " ") // one line
			if len(out) > 200 {
				out = out[:200] + "..."
			}
			if r.StatusCode != 0 {
				return model.HealthCritical, fmt.Sprintf("check %q fails (HTTP %d): %s", r.Check, r.StatusCode, out)
			}
			return model.HealthCritical, fmt.Sprintf("check %q fails: %s", r.Check, out)
		default: // pending, or a status this adapter does not know
			return model.HealthCritical, fmt.Sprintf("check %q has no result yet (%s)", r.Check, r.Status)
		}
	}
	if n := c.Declared[service]; len(ids) < n {
		return model.HealthCritical, fmt.Sprintf("%d of its %d checks have no result yet", n-len(ids), n)
	}
	return model.HealthPassing, ""
}

// logChecks logs, once per change, every instance its checks keep out of
// the callers' endpoints (and why), and every one they let back in.
// failing holds the reasons logged last, by instance ID.
func logChecks(log hclog.Logger, st State, failing map[string]string) {
	now := map[string]string{}
	for _, reg := range st.Services {
		if reg == nil || st.Checks[reg.AllocID] == nil {
			continue
		}
		if _, why := checksHealth(st.Checks[reg.AllocID], reg.ServiceName); why != "" {
			now[InstanceID(reg.AllocID, reg.ServiceName)] = why
		}
	}
	ids := make([]string, 0, len(now))
	for id := range now {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if failing[id] != now[id] {
			log.Warn("Nomad service checks keep this instance from callers", "instance", id, "why", now[id])
		}
	}
	for id := range failing {
		if _, still := now[id]; !still {
			log.Info("Nomad service checks of this instance pass again (or it is gone)", "instance", id)
			delete(failing, id)
		}
	}
	for id, why := range now {
		failing[id] = why
	}
}

// checkCache keeps, by "namespace/job/version", the checks each group of
// that job version declares (group -> service -> count). A job version
// never changes, so each is read once, from one of its allocations.
type checkCache struct {
	mu        sync.Mutex
	byVersion map[string]map[string]map[string]int
}

func newCheckCache() *checkCache {
	return &checkCache{byVersion: map[string]map[string]map[string]int{}}
}

func versionKey(a *api.AllocationListStub) string {
	return a.Namespace + "/" + a.JobID + "/" + strconv.FormatUint(a.JobVersion, 10)
}

// declaredChecks counts the checks of a job's native services, by group
// and service name.
func declaredChecks(job *api.Job) map[string]map[string]int {
	out := map[string]map[string]int{}
	if job == nil {
		return out
	}
	for _, tg := range job.TaskGroups {
		if tg == nil || tg.Name == nil {
			continue
		}
		counts := map[string]int{}
		add := func(svcs []*api.Service) {
			for _, s := range svcs {
				if s != nil && s.Provider == "nomad" && len(s.Checks) > 0 {
					counts[s.Name] += len(s.Checks)
				}
			}
		}
		add(tg.Services)
		for _, t := range tg.Tasks {
			if t != nil {
				add(t.Services)
			}
		}
		if len(counts) > 0 {
			out[*tg.Name] = counts
		}
	}
	return out
}

// fetchChecks reads the checks of every running allocation that
// registers a native service whose group declares checks: the declared
// checks from the job version it runs (cached), the results from Nomad,
// a few allocations at a time. A failed read of one allocation's results
// is recorded in its Err; a failed read of a job version fails the fetch.
func fetchChecks(ctx context.Context, cfg *config, cache *checkCache, regs []*api.ServiceRegistration, allocs []*api.AllocationListStub) (map[string]*AllocChecks, error) {
	registered := map[string]bool{}
	for _, r := range regs {
		if r != nil {
			registered[r.AllocID] = true
		}
	}
	var running []*api.AllocationListStub
	for _, a := range allocs {
		if a != nil && registered[a.ID] && a.ClientStatus == api.AllocClientStatusRunning && !terminal(a) {
			running = append(running, a)
		}
	}
	cache.mu.Lock()
	defer cache.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range running {
		k := versionKey(a)
		seen[k] = true
		if _, ok := cache.byVersion[k]; ok {
			continue
		}
		full, _, err := cfg.client.Allocations().Info(a.ID, (&api.QueryOptions{Namespace: a.Namespace}).WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("reading Nomad allocation %s for the checks of job %s version %d: %w", a.ID, a.JobID, a.JobVersion, err)
		}
		cache.byVersion[k] = declaredChecks(full.Job)
	}
	for k := range cache.byVersion {
		if !seen[k] {
			delete(cache.byVersion, k)
		}
	}
	out := map[string]*AllocChecks{}
	var todo []*api.AllocationListStub
	for _, a := range running {
		if d := cache.byVersion[versionKey(a)][a.TaskGroup]; len(d) > 0 {
			out[a.ID] = &AllocChecks{Declared: d}
			todo = append(todo, a)
		}
	}
	results := readCheckResults(ctx, cfg, todo)
	for id, r := range results {
		out[id].Results, out[id].Err = r.results, r.err
	}
	return out, nil
}

type checkRead struct {
	results api.AllocCheckStatuses
	err     string
}

// readCheckResults reads the check results of allocs, checkFetchers at a
// time, each read bounded by checkFetchTimeout.
func readCheckResults(ctx context.Context, cfg *config, allocs []*api.AllocationListStub) map[string]checkRead {
	out := make(map[string]checkRead, len(allocs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, checkFetchers)
	for _, a := range allocs {
		wg.Add(1)
		sem <- struct{}{}
		go func(a *api.AllocationListStub) {
			defer func() { <-sem; wg.Done() }()
			rctx, cancel := context.WithTimeout(ctx, checkFetchTimeout)
			defer cancel()
			res, err := cfg.client.Allocations().Checks(a.ID, (&api.QueryOptions{Namespace: a.Namespace}).WithContext(rctx))
			r := checkRead{results: res}
			if err != nil {
				r = checkRead{err: err.Error()}
			}
			mu.Lock()
			out[a.ID] = r
			mu.Unlock()
		}(a)
	}
	wg.Wait()
	return out
}

// statusKey sums up the statuses of checks, for the poll to tell a
// change: the results' outputs and times change with every run.
func statusKey(checks map[string]*AllocChecks) string {
	var parts []string
	for alloc, c := range checks {
		if c.Err != "" {
			parts = append(parts, alloc+" error")
			continue
		}
		for id, r := range c.Results {
			parts = append(parts, alloc+" "+id+" "+r.Status)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// checkPoller re-reads, every interval, the check results of the
// allocations the last fetch found with checks, and signals a change when
// a status moved: Nomad sends no event when a check's result changes.
type checkPoller struct {
	mu     sync.Mutex
	allocs []*api.AllocationListStub
	last   string
}

// track records the checked allocations of a fetched state.
func (p *checkPoller) track(st State) {
	byID := make(map[string]*api.AllocationListStub, len(st.Allocs))
	for _, a := range st.Allocs {
		if a != nil {
			byID[a.ID] = a
		}
	}
	var allocs []*api.AllocationListStub
	for id := range st.Checks {
		if a := byID[id]; a != nil {
			allocs = append(allocs, a)
		}
	}
	p.mu.Lock()
	p.allocs, p.last = allocs, statusKey(st.Checks)
	p.mu.Unlock()
}

// run polls until ctx is done, calling mark when a status changed.
func (p *checkPoller) run(ctx context.Context, cfg *config, every time.Duration, mark func()) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		allocs, last := p.allocs, p.last
		p.mu.Unlock()
		if len(allocs) == 0 {
			continue
		}
		reads := readCheckResults(ctx, cfg, allocs)
		now := map[string]*AllocChecks{}
		for id, r := range reads {
			now[id] = &AllocChecks{Results: r.results, Err: r.err}
		}
		if k := statusKey(now); k != last {
			p.mu.Lock()
			p.last = k
			p.mu.Unlock()
			mark()
		}
	}
}
