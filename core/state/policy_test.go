package state

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func applyPolicyAt(t *testing.T, f *fsm, index uint64, c setPolicy) result {
	t.Helper()
	b, err := encodeCommand(cmdSetPolicy, c)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: b}).(result)
}

func files(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

func TestCheckPolicyFiles(t *testing.T) {
	many := map[string][]byte{}
	for i := 0; i <= MaxPolicyFiles; i++ {
		many[fmt.Sprintf("f%03d.hcl", i)] = []byte("#")
	}
	large := map[string][]byte{}
	for i := 0; i < 5; i++ {
		large[fmt.Sprintf("f%d.hcl", i)] = bytes.Repeat([]byte("#"), MaxPolicyFileBytes)
	}
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string // "" for no error
	}{
		{"one file", files("mesh.hcl", "mesh {}"), ""},
		{"none", map[string][]byte{}, "has no files"},
		{"too many files", many, fmt.Sprintf("at most %d", MaxPolicyFiles)},
		{"file too large", files("big.hcl", strings.Repeat("#", MaxPolicyFileBytes+1)), "policy file big.hcl is"},
		{"policy too large", large, "in all"},
		{"not .hcl", files("mesh.txt", "x"), "want a base name ending in .hcl"},
		{"path", files("../mesh.hcl", "x"), "want a base name"},
		{"hidden", files(".x.hcl", "x"), "want a base name"},
		{"control character", files("a\nb.hcl", "x"), "want a base name"},
		{"long name", files(strings.Repeat("a", maxPolicyName)+".hcl", "x"), "want a base name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPolicyFiles(tc.files)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// A command beyond the limits is refused by the FSM itself, alike on
// every replica, and changes nothing.
func TestApplyPolicyRefusesOversized(t *testing.T) {
	f := testFSM(t, nil)
	r := applyPolicyAt(t, f, 5, setPolicy{Files: files("big.hcl", strings.Repeat("#", MaxPolicyFileBytes+1))})
	if r.OK || !strings.Contains(r.Err, "policy file big.hcl is") {
		t.Fatalf("oversized file: %+v, want refused", r)
	}
	// A command larger than maxCommandBytes is refused before decoding.
	huge := append([]byte{cmdSetPolicy}, bytes.Repeat([]byte(" "), maxCommandBytes)...)
	if r := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 6, Data: huge}).(result); r.OK || !strings.Contains(r.Err, "refused") {
		t.Fatalf("huge command: %+v, want refused", r)
	}
	if _, ok := f.activePolicy(); ok {
		t.Fatal("a refused policy became active")
	}
}

func TestApplyPolicyCheckIndex(t *testing.T) {
	var got []PolicyVersion
	f := testFSM(t, nil)
	f.pol.onPolicy = func(v PolicyVersion) { got = append(got, v) }
	a, b, c := files("mesh.hcl", "a"), files("mesh.hcl", "b"), files("mesh.hcl", "c")

	// --check-index 0: only while no policy has been applied.
	if r := applyPolicyAt(t, f, 10, setPolicy{Check: true, CheckIndex: 0, Files: a, AppliedBy: "alice", At: 1000}); !r.OK || r.Index != 10 {
		t.Fatalf("first apply: %+v", r)
	}
	if r := applyPolicyAt(t, f, 11, setPolicy{Check: true, CheckIndex: 0, Files: b}); r.OK || r.Err != errStaleIndex || r.Index != 10 {
		t.Fatalf("check-index 0 over index 10: %+v, want stale with index 10", r)
	}
	// The right index is taken; the old one is refused after it.
	if r := applyPolicyAt(t, f, 12, setPolicy{Check: true, CheckIndex: 10, Files: b, AppliedBy: "bob"}); !r.OK || r.Index != 12 {
		t.Fatalf("check-index 10: %+v", r)
	}
	if r := applyPolicyAt(t, f, 13, setPolicy{Check: true, CheckIndex: 10, Files: c}); r.OK || r.Err != errStaleIndex || r.Index != 12 {
		t.Fatalf("stale check-index 10: %+v, want stale with index 12", r)
	}
	// Without a check it is taken; the same files again record nothing.
	if r := applyPolicyAt(t, f, 14, setPolicy{Files: c}); !r.OK || r.Index != 14 {
		t.Fatalf("unchecked: %+v", r)
	}
	if r := applyPolicyAt(t, f, 15, setPolicy{Files: c}); !r.OK || !r.Unchanged || r.Index != 14 {
		t.Fatalf("same files: %+v, want unchanged at 14", r)
	}
	v, ok := f.activePolicy()
	if !ok || v.Index != 14 || string(v.Files["mesh.hcl"]) != "c" || v.Digest != PolicyDigest(c) {
		t.Fatalf("active: %+v", v)
	}
	if len(got) != 3 || got[0].AppliedBy != "alice" || got[0].AppliedAt.UnixMilli() != 1000 || got[1].AppliedBy != "bob" || got[2].Index != 14 {
		t.Fatalf("handed over %+v, want indexes 10, 12, 14 once each", got)
	}
	e := (&StaleIndexError{Checked: 10, Current: 12}).Error()
	for _, want := range []string{"index is 12", "not 10", "weft policy plan", "--check-index 12"} {
		if !strings.Contains(e, want) {
			t.Errorf("stale message %q lacks %q", e, want)
		}
	}
}

func TestPolicyHistoryBoundedAndSnapshotted(t *testing.T) {
	f := testFSM(t, nil)
	for i := 1; i <= MaxPolicyHistory+5; i++ {
		if r := applyPolicyAt(t, f, uint64(i), setPolicy{Files: files("mesh.hcl", fmt.Sprint(i))}); !r.OK {
			t.Fatalf("apply %d: %+v", i, r)
		}
	}
	if n := len(f.pol.history); n != MaxPolicyHistory || f.pol.history[0].Index != 6 {
		t.Fatalf("history holds %d versions from index %d, want %d from 6", n, f.pol.history[0].Index, MaxPolicyHistory)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// A replica restored from the snapshot holds the same history, and
	// hands the active version over.
	var got []PolicyVersion
	g := testFSM(t, nil)
	g.pol.onPolicy = func(v PolicyVersion) { got = append(got, v) }
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap.(*fsmSnapshot).b))); err != nil {
		t.Fatal(err)
	}
	if len(g.pol.history) != MaxPolicyHistory || len(got) != 1 || got[0].Index != uint64(MaxPolicyHistory+5) {
		t.Fatalf("restored %d versions, handed over %+v", len(g.pol.history), got)
	}
}

// While a restarted replica replays its log, nothing is handed over nor
// cached; once it has caught up, the active version is, once.
func TestPolicyQuietWhileReplaying(t *testing.T) {
	dir := t.TempDir()
	var got []uint64
	f := testFSM(t, nil)
	f.pol.cache = filepath.Join(dir, policyCacheFile)
	f.pol.onPolicy = func(v PolicyVersion) { got = append(got, v.Index) }
	f.setQuiet(true)
	for i := uint64(1); i <= 3; i++ {
		applyPolicyAt(t, f, i, setPolicy{Files: files("mesh.hcl", fmt.Sprint(i))})
	}
	if len(got) != 0 {
		t.Fatalf("handed over %v while replaying", got)
	}
	if _, err := os.Stat(f.pol.cache); err == nil {
		t.Fatal("the cache was written while replaying")
	}
	f.setQuiet(false)
	if len(got) != 1 || got[0] != 3 {
		t.Fatalf("handed over %v after catching up, want [3]", got)
	}
	v, ok, err := LoadCachedPolicy(dir)
	if err != nil || !ok || v.Index != 3 || string(v.Files["mesh.hcl"]) != "3" {
		t.Fatalf("cached: %+v %v %v", v, ok, err)
	}
	// A damaged cache is refused with what to do.
	v.Files["mesh.hcl"] = []byte("changed")
	b, _ := encodeCommand(0, v)
	if err := os.WriteFile(f.pol.cache, b[1:], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadCachedPolicy(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged cache: %v", err)
	}
}

// The largest policy the limits let through fits in one command, and the
// command in one forwarded request (a follower sends it to the leader).
func TestLargestPolicyFitsAForwardedCommand(t *testing.T) {
	largest := map[string][]byte{}
	for i := 0; i < MaxPolicyFiles; i++ {
		name := fmt.Sprintf("%0*d.hcl", maxPolicyName-4, i)
		largest[name] = bytes.Repeat([]byte{0xff}, MaxPolicyBytes/MaxPolicyFiles)
	}
	if err := CheckPolicyFiles(largest); err != nil {
		t.Fatal(err)
	}
	note := strings.Repeat("é", maxPolicyNote)
	cmd, err := encodeCommand(cmdSetPolicy, setPolicy{Check: true, CheckIndex: 1 << 62, Files: largest, AppliedBy: clip(note), Token: clip(note), Summary: clip(note), At: 1 << 50})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := encodeCommand(0, rpcRequest{Op: opApply, Cmd: cmd})
	t.Logf("the largest policy: a command of %d bytes (limit %d), a forwarded request of %d (limit %d)", len(cmd), maxCommandBytes, len(req)-1, maxFrame)
	if len(cmd) > maxCommandBytes || len(req)-1 > maxFrame {
		t.Fatalf("command %d bytes (limit %d), request %d bytes (limit %d)", len(cmd), maxCommandBytes, len(req)-1, maxFrame)
	}
	f := testFSM(t, nil)
	if r := applyPolicyAt(t, f, 1, setPolicy{Files: largest}); !r.OK {
		t.Fatalf("the largest policy: %+v", r)
	}
}
