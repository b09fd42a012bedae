package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/state"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// Where the controller's policy comes from (docs/operations-raft.md,
// "The policy of a cluster"):
//
//   - a single controller (no --raft-dir) watches --policy-dir, as it
//     always has (dirPolicy);
//   - a replica compiles the policy applied through `weft policy apply`,
//     the same bytes on every replica (replicatedPolicy). Until the first
//     apply, its --policy-dir is the bootstrap policy: read once at start,
//     not watched, because replicas watching their own directories would
//     drift apart. Once a policy is applied, it wins, also after a restart
//     (the replica keeps it in --raft-dir and compiles it before it hears
//     from its peers).
type policySource interface {
	api.PolicyFiles
	api.PolicyInForcer
	// Run sends each new good policy on out until ctx is done.
	Run(ctx context.Context, out chan<- *policy.Policy)
}

// choosePolicy returns the controller's policy source and the policy to
// start with: for a replica, the replicated policy it kept at its last
// run, if any and good; else the directory's (pol, sources).
func choosePolicy(f controllerFlags, rep *replica, pol *policy.Policy, sources map[string]string, log *slog.Logger) (policySource, *policy.Policy) {
	if rep == nil {
		w := controller.NewPolicyWatcher(controller.WatchOptions{
			Dir: f.policyDir, Every: f.pollEvery, MaxFileBytes: policyhcl.MaxFileBytes,
			Load:      func() (*policy.Policy, map[string]string, error) { return loadPolicy(f.policyDir, log) },
			Summarize: policyhcl.Summary, Logger: log,
		}, sources)
		return dirPolicy{PolicyWatcher: w, dir: f.policyDir}, pol
	}
	r := &replicatedPolicy{dir: f.policyDir, every: f.pollEvery, log: log, sources: sources, offers: make(chan state.PolicyVersion, 1)}
	rep.policy = r
	v, ok, err := state.LoadCachedPolicy(rep.f.dir)
	switch {
	case err != nil:
		log.Error("raft: the policy this replica kept cannot be read; serving --policy-dir until its peers send the cluster's", "err", err)
	case ok:
		kept, srcs, err := compileVersion(v)
		if err != nil {
			log.Error("raft: the policy this replica kept does not compile; serving --policy-dir until its peers send the cluster's", "index", v.Index, "err", err)
			break
		}
		kept.Index = v.Index
		r.take(v, srcs)
		log.Info("raft: serving the replicated policy as this replica kept it; --policy-dir is not read", "index", v.Index, "applied_by", v.AppliedBy, "summary", policyhcl.Summary(kept))
		return r, kept
	}
	log.Info("raft: no policy applied through `weft policy apply` yet: --policy-dir is the bootstrap policy, read once and not watched", "dir", f.policyDir)
	return r, pol
}

// dirPolicy is a single controller's watched --policy-dir.
type dirPolicy struct {
	*controller.PolicyWatcher
	dir string
}

func (d dirPolicy) InForce() api.PolicyInForce {
	return api.PolicyInForce{Source: "directory", Dir: d.dir, Watched: true}
}

// replicatedPolicy is a replica's policy: the one applied through raft,
// handed over by the replicated state (state.Options.OnPolicy), compiled
// here; or the bootstrap --policy-dir until the first apply.
type replicatedPolicy struct {
	dir    string
	every  time.Duration // how often to look at dir, to say its changes are not read
	log    *slog.Logger
	offers chan state.PolicyVersion // one slot: the latest wins

	mu      sync.Mutex
	sources map[string]string
	errText string
	inForce *state.PolicyVersion // without files; nil: the bootstrap directory
}

// offer hands over an applied version; it never blocks (raft's goroutine
// calls it).
func (r *replicatedPolicy) offer(v state.PolicyVersion) {
	for {
		select {
		case r.offers <- v:
			return
		default:
		}
		select {
		case <-r.offers:
		default:
		}
	}
}

func (r *replicatedPolicy) take(v state.PolicyVersion, sources map[string]string) {
	v.Files = nil
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources, r.inForce, r.errText = sources, &v, ""
}

func (r *replicatedPolicy) Run(ctx context.Context, out chan<- *policy.Policy) {
	every := r.every
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	seen := dirStamp(r.dir)
	for {
		var v state.PolicyVersion
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// An operator who edits --policy-dir of a replica expects a
			// reload: say once per change why there is none.
			if now := dirStamp(r.dir); now != seen {
				seen = now
				r.log.Warn("raft: --policy-dir changed, and is not read: a replica's policy is the replicated one; apply the files to the cluster with `weft policy apply DIR`", "dir", r.dir)
			}
			continue
		case v = <-r.offers:
		}
		r.mu.Lock()
		same := r.inForce != nil && r.inForce.Index == v.Index && r.inForce.Digest == v.Digest
		r.mu.Unlock()
		if same {
			continue
		}
		pol, sources, err := compileVersion(v)
		if err != nil {
			// The proposer compiled it before committing; a replica of
			// another version may not. Its last good policy stays.
			r.mu.Lock()
			r.errText = fmt.Sprintf("the policy applied at index %d does not compile on this replica (is it an older weft?): %v; the last good policy stays in force", v.Index, err)
			r.mu.Unlock()
			r.log.Error("raft: replicated policy rejected; the last good policy stays in force", "index", v.Index, "err", err)
			continue
		}
		pol.Index = v.Index // configuration versions begin with it (core/meshserver)
		r.take(v, sources)
		r.log.Info("raft: the replicated policy is in force", "index", v.Index, "applied_by", v.AppliedBy, "token", v.Token,
			"applied_at", v.AppliedAt.Format(time.RFC3339), "digest", v.Digest, "summary", policyhcl.Summary(pol))
		select {
		case out <- pol:
		case <-ctx.Done():
			return
		}
	}
}

func (r *replicatedPolicy) Sources() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.sources)
}

func (r *replicatedPolicy) Error() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errText
}

func (r *replicatedPolicy) InForce() api.PolicyInForce {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inForce == nil {
		return api.PolicyInForce{Source: "directory", Dir: r.dir,
			Note: "the bootstrap policy of a raft cluster: read at start, not watched; in force until the first `weft policy apply`"}
	}
	at := r.inForce.AppliedAt
	return api.PolicyInForce{Source: "replicated", Dir: r.dir, Index: r.inForce.Index, AppliedBy: r.inForce.AppliedBy, Token: r.inForce.Token,
		AppliedAt: &at, Digest: r.inForce.Digest, Note: "applied through `weft policy apply`; --policy-dir is not read"}
}

// compileVersion compiles a replicated version, with its diagnostics in
// the error.
func compileVersion(v state.PolicyVersion) (*policy.Policy, map[string]string, error) {
	if err := state.CheckPolicyFiles(v.Files); err != nil {
		return nil, nil, err
	}
	_, diags, pol := compileFiles(v.Files)
	if pol == nil {
		return nil, nil, fmt.Errorf("%s", strings.TrimSpace(diags))
	}
	sources := make(map[string]string, len(v.Files))
	for n, b := range v.Files {
		sources[n] = string(b)
	}
	return pol, sources, nil
}

// compileFiles compiles a policy's files by name: its summary, its
// diagnostics rendered as `weft policy validate` prints them (without
// color), and the policy (nil when any is an error).
func compileFiles(files map[string][]byte) (string, string, *policy.Policy) {
	pol, diags, parsed := policyhcl.LoadSources(files)
	var b strings.Builder
	if len(diags) > 0 {
		_ = policyhcl.WriteDiagnostics(&b, diags, parsed, false)
	}
	if pol == nil {
		return "", b.String(), nil
	}
	return policyhcl.Summary(pol), b.String(), pol
}

// compilePolicy is the admin API's PolicyCompiler.
func compilePolicy(files map[string][]byte) (string, string, bool) {
	summary, diags, pol := compileFiles(files)
	return summary, diags, pol != nil
}

// onPolicy is state.Options.OnPolicy: the replicated state's active
// policy, handed to the controller's policy source.
func (p *replica) onPolicy(v state.PolicyVersion) {
	if p.policy != nil {
		p.policy.offer(v)
	}
}

// policyStore is the admin API's PolicyStore (nil without a replica).
func (p *replica) policyStore() api.PolicyStore {
	if p == nil || p.node == nil {
		return nil
	}
	return p.node
}

// dirStamp names the *.hcl files of dir with their sizes and times, to
// notice a change without reading them.
func dirStamp(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".hcl") {
			continue
		}
		if info, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return b.String()
}
