package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/inputlimit"
)

// The commands of the log: one byte of type, then the command in JSON.
const (
	cmdSetCA byte = 1 // setCA: a new CA state (first one, rotation, retirement)
	cmdSpend byte = 2 // spend: a join token spent
	// cmdSetPolicy (3) is in policy.go.
)

// setCA makes Sealed (a ca.State in JSON, sealed) the CA state, if the
// state in force is still the one named Base (its ca.State.Digest); an
// empty Base is the first CA of the cluster, taken only when there is
// none yet.
type setCA struct {
	Base   string `json:"base"`
	Sealed []byte `json:"sealed"`
}

// spend records join token ID spent until Exp (Unix seconds). Now is the
// proposer's clock: every replica drops the tokens expired by then, so
// they all hold the same set.
type spend struct {
	ID  string `json:"id"`
	Exp int64  `json:"exp"`
	Now int64  `json:"now"`
	// Req names the request that spends it (random, per Spend call), so
	// that the same command applied again (a retry after the leader
	// committed it and lost the leadership before answering) is this
	// request's success again, not "already used".
	Req string `json:"req,omitempty"`
}

// result is what applying a command returns to its proposer.
type result struct {
	OK  bool   `json:"ok"`
	Err string `json:"err,omitempty"`
	// Index and Unchanged answer a setPolicy: the index of the version
	// in force after it (or, refused, before it), and whether the files
	// were that version's already.
	Index     uint64 `json:"index,omitempty"`
	Unchanged bool   `json:"unchanged,omitempty"`
}

// Limits on what the state reads back: a command is a CA state (a few
// KiB), a token ID or a policy (at most MaxPolicyBytes, base64 in JSON);
// a snapshot holds at most maxSpent tokens and MaxPolicyHistory policies.
const (
	maxCommandBytes  = 2 << 20
	maxSnapshotBytes = 96 << 20
	maxJSONDepth     = 16
	maxSpent         = 1 << 20
)

// fsm is the replicated state: the sealed CA state and the spent join
// tokens. Every replica applies the same commands in the same order.
type fsm struct {
	seal  *sealer
	log   *slog.Logger
	cache string // the sealed CA state as last applied, for a restart
	onCA  func(ca.State)

	mu       sync.RWMutex
	caSealed []byte
	caDigest string
	spent    map[string]int64
	spentBy  map[string]string // token ID -> the request that spent it (spend.Req)
	pol      policyState       // policy.go

	// applied is the index of the last command this FSM applied (or of
	// the snapshot it restored). raft's AppliedIndex is not that: it
	// counts entries handed to the FSM's goroutine, which may not have
	// applied them yet, so a write that waited on it could find its own
	// entry missing (TestClusterAttackWritesRacingLeaderChanges).
	applied atomic.Uint64
}

func newFSM(seal *sealer, cache string, onCA func(ca.State), log *slog.Logger) *fsm {
	return &fsm{seal: seal, cache: cache, onCA: onCA, log: log, spent: map[string]int64{}, spentBy: map[string]string{}}
}

func encodeCommand(t byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding a command: %w", err)
	}
	return append([]byte{t}, b...), nil
}

// Apply applies one committed entry.
func (f *fsm) Apply(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) < 1 || len(l.Data) > maxCommandBytes {
		return result{Err: fmt.Sprintf("a command of %d bytes: refused", len(l.Data))}
	}
	if err := inputlimit.JSONDepth(l.Data[1:], maxJSONDepth); err != nil {
		return result{Err: "decoding a command: " + err.Error()}
	}
	switch l.Data[0] {
	case cmdSetCA:
		var c setCA
		if err := json.Unmarshal(l.Data[1:], &c); err != nil {
			return result{Err: "decoding a CA state: " + err.Error()}
		}
		return f.applyCA(c)
	case cmdSpend:
		var c spend
		if err := json.Unmarshal(l.Data[1:], &c); err != nil {
			return result{Err: "decoding a spent token: " + err.Error()}
		}
		return f.applySpend(c)
	case cmdSetPolicy:
		var c setPolicy
		if err := json.Unmarshal(l.Data[1:], &c); err != nil {
			return result{Err: "decoding a policy: " + err.Error()}
		}
		return f.applyPolicy(c, l.Index)
	}
	// A command of a newer version: refused alike on every replica.
	return result{Err: fmt.Sprintf("unknown command type %d (is a newer controller in the cluster?)", l.Data[0])}
}

func (f *fsm) openCA(sealed []byte) (ca.State, error) {
	plain, err := f.seal.open("CA state", sealed)
	if err != nil {
		return ca.State{}, err
	}
	if err := inputlimit.JSONDepth(plain, maxJSONDepth); err != nil {
		return ca.State{}, fmt.Errorf("decoding the CA state: %w", err)
	}
	var st ca.State
	if err := json.Unmarshal(plain, &st); err != nil {
		return ca.State{}, fmt.Errorf("decoding the CA state: %w", err)
	}
	return st, nil
}

func (f *fsm) applyCA(c setCA) result {
	st, err := f.openCA(c.Sealed)
	if err != nil {
		// Every replica with the right key refuses it alike; one with
		// another key must not diverge silently.
		f.log.Error("replicated CA state refused", "err", err)
		return result{Err: err.Error()}
	}
	f.mu.Lock()
	switch {
	case c.Base == "" && f.caSealed != nil:
		f.mu.Unlock()
		return result{OK: false} // the cluster has its CA already
	case c.Base != "" && st.Digest() == f.caDigest:
		// This very change, applied again (a retry after the leader
		// committed it and lost the leadership before answering): a
		// rotation's new root is random, so no other request makes it.
		f.mu.Unlock()
		return result{OK: true}
	case c.Base != "" && c.Base != f.caDigest:
		f.mu.Unlock()
		return result{Err: ca.ErrStale.Error()}
	}
	f.mu.Unlock()
	// Installed first, then recorded: HasCA is true only once the
	// controller's CA is the cluster's. Apply runs on one goroutine.
	f.installCA(st, c.Sealed)
	f.mu.Lock()
	f.caSealed, f.caDigest = c.Sealed, st.Digest()
	f.mu.Unlock()
	return result{OK: true}
}

// installCA hands st to the controller's CA and keeps the sealed state in
// the cache file, read at the next start before the log is replayed.
func (f *fsm) installCA(st ca.State, sealed []byte) {
	if f.cache != "" {
		if err := writeFileAtomic(f.cache, sealed); err != nil {
			f.log.Warn("keeping the replicated CA state for the next start", "file", f.cache, "err", err)
		}
	}
	if f.onCA != nil {
		f.onCA(st)
	}
}

func (f *fsm) applySpend(c spend) result {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, exp := range f.spent {
		if exp < c.Now {
			delete(f.spent, id)
			delete(f.spentBy, id)
		}
	}
	if exp, ok := f.spent[c.ID]; ok && exp >= c.Now {
		// The same request again (a retry): its own spend.
		return result{OK: c.Req != "" && f.spentBy[c.ID] == c.Req}
	}
	if len(f.spent) >= maxSpent {
		return result{Err: "too many join tokens spent within their lifetime; refusing more until some expire"}
	}
	f.spent[c.ID] = c.Exp
	if c.Req != "" {
		f.spentBy[c.ID] = c.Req
	}
	return result{OK: true}
}

func (f *fsm) isSpent(id string, now int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	exp, ok := f.spent[id]
	return ok && exp >= now
}

func (f *fsm) digest() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.caDigest
}

// snapshotData is a snapshot of the state, as raft keeps it and as `weft
// operator snapshot save` writes it (inside its envelope). The CA state
// stays sealed.
type snapshotData struct {
	Version  int              `json:"v"`
	CASealed []byte           `json:"ca,omitempty"`
	Spent    map[string]int64 `json:"spent"`
	Policies []PolicyVersion  `json:"policies,omitempty"` // oldest first, the last active
	// Applied is the index of the last command the snapshot holds (0 in
	// snapshots of earlier versions).
	Applied uint64 `json:"applied,omitempty"`
	// SpentBy names the request that spent each token (fsm.spentBy).
	SpentBy map[string]string `json:"spent_by,omitempty"`
}

type fsmSnapshot struct{ b []byte }

// Snapshot copies the state; raft persists it in another goroutine.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	d := snapshotData{Version: 1, CASealed: f.caSealed, Spent: make(map[string]int64, len(f.spent)), Applied: f.applied.Load()}
	for k, v := range f.spent {
		d.Spent[k] = v
	}
	d.SpentBy = make(map[string]string, len(f.spentBy))
	for k, v := range f.spentBy {
		d.SpentBy[k] = v
	}
	d.Policies = append([]PolicyVersion(nil), f.pol.history...)
	f.mu.RUnlock()
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding a snapshot: %w", err)
	}
	return &fsmSnapshot{b: b}, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.b); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("writing a snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	d, err := readSnapshotData(rc)
	if err != nil {
		return err
	}
	var st ca.State
	digest := ""
	if d.CASealed != nil {
		if st, err = f.openCA(d.CASealed); err != nil {
			return fmt.Errorf("restoring a snapshot: %w", err)
		}
		digest = st.Digest()
	}
	if d.CASealed != nil {
		f.installCA(st, d.CASealed)
	}
	f.mu.Lock()
	f.caSealed, f.caDigest, f.spent = d.CASealed, digest, d.Spent
	if f.spent == nil {
		f.spent = map[string]int64{}
	}
	f.spentBy = d.SpentBy
	if f.spentBy == nil {
		f.spentBy = map[string]string{}
	}
	f.pol.history = d.Policies
	f.mu.Unlock()
	f.applied.Store(d.Applied)
	f.publishPolicy()
	return nil
}

func readSnapshotData(r io.Reader) (snapshotData, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSnapshotBytes+1))
	if err != nil {
		return snapshotData{}, fmt.Errorf("reading a snapshot: %w", err)
	}
	if len(b) > maxSnapshotBytes {
		return snapshotData{}, fmt.Errorf("reading a snapshot: larger than %d MiB, not one of ours", maxSnapshotBytes>>20)
	}
	if err := inputlimit.JSONDepth(b, maxJSONDepth); err != nil {
		return snapshotData{}, fmt.Errorf("reading a snapshot: %w", err)
	}
	var d snapshotData
	if err := json.Unmarshal(b, &d); err != nil {
		return snapshotData{}, fmt.Errorf("reading a snapshot: %w", err)
	}
	if d.Version != 1 {
		return snapshotData{}, fmt.Errorf("reading a snapshot: version %d, this controller reads version 1", d.Version)
	}
	if len(d.Spent) > maxSpent || len(d.SpentBy) > maxSpent {
		return snapshotData{}, errors.New("reading a snapshot: too many spent tokens")
	}
	if len(d.Policies) > MaxPolicyHistory {
		return snapshotData{}, fmt.Errorf("reading a snapshot: %d policy versions, at most %d are kept", len(d.Policies), MaxPolicyHistory)
	}
	for _, v := range d.Policies {
		if err := CheckPolicyFiles(v.Files); err != nil {
			return snapshotData{}, fmt.Errorf("reading a snapshot: the policy at index %d: %w", v.Index, err)
		}
	}
	return d, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
