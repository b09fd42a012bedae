package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/weftmesh/weft/core/inputlimit"
)

// The policy as replicated state (issue 17 part 3): `weft policy apply`
// commits the policy's source files, with who applied them and when, and
// every replica compiles the same bytes. The state keeps the last
// MaxPolicyHistory versions, files included; the newest is the active one.

// Limits of a replicated policy, checked by the admin API before anything
// is parsed and again by every replica when it applies the command (so a
// command made by hand is refused alike everywhere). They are tighter than
// what `weft policy validate` reads from a directory because every version
// travels in one raft entry and the last MaxPolicyHistory are kept.
const (
	MaxPolicyFiles     = 128
	MaxPolicyFileBytes = 256 << 10
	MaxPolicyBytes     = 1 << 20
	MaxPolicyHistory   = 20
	// maxPolicyNote bounds AppliedBy, Token and Summary.
	maxPolicyNote = 512
	// maxPolicyName bounds a file name.
	maxPolicyName = 128
)

// PolicyVersion is one applied policy.
type PolicyVersion struct {
	// Index is the raft index of the entry that applied it: what
	// --check-index names, and what `weft policy show --index` takes.
	Index     uint64    `json:"index"`
	AppliedAt time.Time `json:"applied_at"`
	// AppliedBy is who applied it, as the CLI said (--applied-by, or the
	// user and host it ran as); Token names the admin token the request
	// carried (a fingerprint, never the token).
	AppliedBy string `json:"applied_by,omitempty"`
	Token     string `json:"token,omitempty"`
	// Digest is PolicyDigest(Files); Summary the compiler's one line.
	Digest  string `json:"digest"`
	Summary string `json:"summary,omitempty"`
	// Files are the sources by base name; empty in a history listing.
	Files map[string][]byte `json:"files,omitempty"`
	// Request names the apply that made it (random, per ApplyPolicy
	// call): the same command applied again is that apply's success.
	Request string `json:"request,omitempty"`
}

// PolicyApply is a request to make files the active policy.
type PolicyApply struct {
	Files     map[string][]byte
	AppliedBy string
	Token     string
	Summary   string
	// CheckIndex, when set, is the index the active policy must have
	// (0: no policy applied yet), or the apply is refused with a
	// *StaleIndexError.
	CheckIndex *uint64
	// At is when it was asked (the proposer's clock; zero: now).
	At time.Time
}

// StaleIndexError is the refusal of an apply whose CheckIndex is not the
// active policy's index.
type StaleIndexError struct {
	Checked, Current uint64
}

func (e *StaleIndexError) Error() string {
	now := fmt.Sprintf("the active policy's index is %d", e.Current)
	if e.Current == 0 {
		now = "no policy has been applied yet (index 0)"
	}
	return fmt.Sprintf("refused: %s, not %d as --check-index says: someone applied a policy since you planned. "+
		"Run `weft policy plan DIR` again to see what your change does now, then `weft policy apply DIR --check-index %d`", now, e.Checked, e.Current)
}

// cmdSetPolicy is the type of a setPolicy command (fsm.go lists the
// others).
const cmdSetPolicy byte = 3

// setPolicy is the command that applies a policy.
type setPolicy struct {
	Check      bool              `json:"check,omitempty"`
	CheckIndex uint64            `json:"check_index,omitempty"`
	Files      map[string][]byte `json:"files"`
	AppliedBy  string            `json:"applied_by,omitempty"`
	Token      string            `json:"token,omitempty"`
	Summary    string            `json:"summary,omitempty"`
	At         int64             `json:"at"` // Unix milliseconds
	// Req names the request (PolicyVersion.Request).
	Req string `json:"req,omitempty"`
}

// CheckPolicyFiles checks a policy's files against the limits and the
// naming rule (a base name ending in .hcl) without parsing them.
func CheckPolicyFiles(files map[string][]byte) error {
	if len(files) == 0 {
		return errors.New("the policy has no files: give a directory holding *.hcl files (an empty policy would deny every connection)")
	}
	if len(files) > MaxPolicyFiles {
		return fmt.Errorf("the policy has %d files; a replicated policy holds at most %d: merge small files", len(files), MaxPolicyFiles)
	}
	total := 0
	for _, name := range sortedNames(files) {
		if err := checkPolicyName(name); err != nil {
			return err
		}
		n := len(files[name])
		if n > MaxPolicyFileBytes {
			return fmt.Errorf("policy file %s is %s; a replicated policy file is at most %s", name, inputlimit.Bytes(int64(n)), inputlimit.Bytes(MaxPolicyFileBytes))
		}
		total += n
	}
	if total > MaxPolicyBytes {
		return fmt.Errorf("the policy is %s in all; a replicated policy is at most %s: check for files that do not belong in it", inputlimit.Bytes(int64(total)), inputlimit.Bytes(MaxPolicyBytes))
	}
	return nil
}

func checkPolicyName(name string) error {
	ok := name != "" && len(name) <= maxPolicyName && utf8.ValidString(name) && strings.HasSuffix(name, ".hcl") &&
		!strings.HasPrefix(name, ".") && !strings.ContainsAny(name, "/\\\x00")
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("policy file name %q: want a base name ending in .hcl, at most %d bytes, not hidden, without slashes or control characters", name, maxPolicyName)
	}
	return nil
}

// PolicyDigest is the SHA-256 of a policy's files, names and bytes, in
// name order: two policies with the same digest are the same files.
func PolicyDigest(files map[string][]byte) string {
	h := sha256.New()
	for _, name := range sortedNames(files) {
		fmt.Fprintf(h, "%d:%s\x00%d:", len(name), name, len(files[name]))
		h.Write(files[name])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func clip(s string) string {
	if len(s) <= maxPolicyNote {
		return s
	}
	s = s[:maxPolicyNote]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// policyState is the FSM's part for the policy: the history (the last
// one active) and how a change reaches the controller.
type policyState struct {
	history []PolicyVersion // oldest first; guarded by fsm.mu

	cache    string              // policyCacheFile in the raft directory
	onPolicy func(PolicyVersion) // the controller's; may be nil

	pub       sync.Mutex
	quiet     bool   // replaying entries from before this start: publish nothing yet
	published string // index and digest of the version last handed over
}

// applyPolicy applies a setPolicy command at index.
func (f *fsm) applyPolicy(c setPolicy, index uint64) result {
	if err := CheckPolicyFiles(c.Files); err != nil {
		return result{Err: err.Error()}
	}
	v := PolicyVersion{Index: index, AppliedAt: time.UnixMilli(c.At).UTC(), AppliedBy: clip(c.AppliedBy), Token: clip(c.Token),
		Summary: clip(c.Summary), Digest: PolicyDigest(c.Files), Files: c.Files, Request: clip(c.Req)}
	f.mu.Lock()
	var cur PolicyVersion
	if n := len(f.pol.history); n > 0 {
		cur = f.pol.history[n-1]
	}
	if c.Req != "" && cur.Request == v.Request {
		// This very apply again (a retry after the leader committed it
		// and lost the leadership before answering): its own success,
		// not a stale index.
		f.mu.Unlock()
		return result{OK: true, Index: cur.Index}
	}
	if c.Check && c.CheckIndex != cur.Index {
		f.mu.Unlock()
		return result{Err: errStaleIndex, Index: cur.Index}
	}
	if cur.Index != 0 && cur.Digest == v.Digest {
		f.mu.Unlock()
		return result{OK: true, Index: cur.Index, Unchanged: true}
	}
	f.pol.history = append(f.pol.history, v)
	if n := len(f.pol.history); n > MaxPolicyHistory {
		f.pol.history = append([]PolicyVersion(nil), f.pol.history[n-MaxPolicyHistory:]...)
	}
	f.mu.Unlock()
	f.publishPolicy()
	return result{OK: true, Index: index}
}

// errStaleIndex is result.Err of a refused check; result.Index is the
// active policy's index.
const errStaleIndex = "stale policy index"

// activePolicy is the active version (ok false: none applied yet).
func (f *fsm) activePolicy() (PolicyVersion, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if n := len(f.pol.history); n > 0 {
		return f.pol.history[n-1], true
	}
	return PolicyVersion{}, false
}

// publishPolicy hands the active version to the controller, and keeps it
// in the cache file, unless it was handed over already or the replica is
// still replaying entries from before its start.
func (f *fsm) publishPolicy() {
	f.pol.pub.Lock()
	defer f.pol.pub.Unlock()
	if f.pol.quiet {
		return
	}
	v, ok := f.activePolicy()
	if !ok {
		return
	}
	key := fmt.Sprintf("%d %s", v.Index, v.Digest)
	if key == f.pol.published {
		return
	}
	f.pol.published = key
	if f.pol.cache != "" {
		if b, err := json.Marshal(v); err == nil {
			if err := writeFileAtomic(f.pol.cache, b); err != nil {
				f.log.Warn("keeping the replicated policy for the next start", "file", f.pol.cache, "err", err)
			}
		}
	}
	if f.pol.onPolicy != nil {
		f.pol.onPolicy(v)
	}
}

// setQuiet holds publishing back (q) or lets it go, publishing the
// active version at once.
func (f *fsm) setQuiet(q bool) {
	f.pol.pub.Lock()
	was := f.pol.quiet
	f.pol.quiet = q
	f.pol.pub.Unlock()
	if was && !q {
		f.publishPolicy()
	}
}

func (f *fsm) isQuiet() bool {
	f.pol.pub.Lock()
	defer f.pol.pub.Unlock()
	return f.pol.quiet
}

// policyCacheFile keeps the active policy as last handed over, so that a
// replica that restarts compiles it before it has caught up with its
// peers (or without a quorum).
const policyCacheFile = "policy-active.json"

// LoadCachedPolicy reads the active policy a replica kept in dir at its
// last run, if there is one.
func LoadCachedPolicy(dir string) (PolicyVersion, bool, error) {
	path := filepath.Join(dir, policyCacheFile)
	b, err := inputlimit.ReadFile(path, 2*MaxPolicyBytes)
	if errors.Is(err, os.ErrNotExist) {
		return PolicyVersion{}, false, nil
	}
	if err != nil {
		return PolicyVersion{}, false, fmt.Errorf("reading the kept policy: %w", err)
	}
	var v PolicyVersion
	if err := inputlimit.JSONDepth(b, maxJSONDepth); err != nil {
		return PolicyVersion{}, false, fmt.Errorf("reading the kept policy %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return PolicyVersion{}, false, fmt.Errorf("reading the kept policy %s: %w", path, err)
	}
	if err := CheckPolicyFiles(v.Files); err != nil {
		return PolicyVersion{}, false, fmt.Errorf("reading the kept policy %s: %w", path, err)
	}
	if d := PolicyDigest(v.Files); d != v.Digest {
		return PolicyVersion{}, false, fmt.Errorf("reading the kept policy %s: its files' digest is %s, not the %s it records: the file is damaged; remove it and the replica reads the policy from its peers", path, d, v.Digest)
	}
	return v, true, nil
}

// ApplyPolicy commits a policy through the leader (a follower forwards
// it) and returns once this replica has applied it. unchanged: the files
// are the active policy's already, and nothing was recorded.
func (n *Node) ApplyPolicy(req PolicyApply) (v PolicyVersion, unchanged bool, err error) {
	if err := CheckPolicyFiles(req.Files); err != nil {
		return PolicyVersion{}, false, err
	}
	at := req.At
	if at.IsZero() {
		at = time.Now()
	}
	c := setPolicy{Files: req.Files, AppliedBy: clip(req.AppliedBy), Token: clip(req.Token), Summary: clip(req.Summary), At: at.UnixMilli(), Req: requestID()}
	if req.CheckIndex != nil {
		c.Check, c.CheckIndex = true, *req.CheckIndex
	}
	cmd, err := encodeCommand(cmdSetPolicy, c)
	if err != nil {
		return PolicyVersion{}, false, err
	}
	res, idx, err := n.apply(cmd)
	if err != nil {
		return PolicyVersion{}, false, fmt.Errorf("applying the policy: %w", err)
	}
	if res.Err == errStaleIndex {
		return PolicyVersion{}, false, &StaleIndexError{Checked: c.CheckIndex, Current: res.Index}
	}
	if res.Err != "" {
		return PolicyVersion{}, false, fmt.Errorf("applying the policy: %s", res.Err)
	}
	if err := n.waitApplied(idx); err != nil {
		return PolicyVersion{}, false, err
	}
	v, ok := n.PolicyAt(res.Index)
	if !ok {
		return PolicyVersion{}, false, fmt.Errorf("applying the policy: committed at index %d, but this replica does not hold it", res.Index)
	}
	return v, res.Unchanged, nil
}

// ActivePolicy is the active policy, files included (ok false: none has
// been applied; the controllers serve their --policy-dir).
func (n *Node) ActivePolicy() (PolicyVersion, bool) { return n.fsm.activePolicy() }

// PolicyHistory lists the kept versions, newest first, without files.
func (n *Node) PolicyHistory() []PolicyVersion {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	out := make([]PolicyVersion, 0, len(n.fsm.pol.history))
	for i := len(n.fsm.pol.history) - 1; i >= 0; i-- {
		v := n.fsm.pol.history[i]
		v.Files = nil
		out = append(out, v)
	}
	return out
}

// PolicyAt is the version applied at index, if it is kept.
func (n *Node) PolicyAt(index uint64) (PolicyVersion, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	for _, v := range n.fsm.pol.history {
		if v.Index == index {
			return v, true
		}
	}
	return PolicyVersion{}, false
}

// startQuiet holds policy publishing back while the replica replays the
// entries it had at this start (up to last): the controller serves the
// cached policy meanwhile, not every older version in turn.
func (n *Node) startQuiet(existing bool) {
	n.fsm.setQuiet(existing)
}

// catchUp lets publishing go once the replica has applied every entry it
// had at its start; watch calls it.
func (n *Node) catchUp() {
	if n.fsm.isQuiet() && n.raft.AppliedIndex() >= n.startIndex {
		n.fsm.setQuiet(false)
	}
}
