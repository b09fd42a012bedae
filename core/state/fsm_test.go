package state

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/weftmesh/weft/core/ca"
)

func testFSM(t *testing.T, onCA func(ca.State)) *fsm {
	t.Helper()
	s, err := newSealer(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return newFSM(s, "", onCA, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func applyCmd(t *testing.T, f *fsm, typ byte, v any) result {
	t.Helper()
	b, err := encodeCommand(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Type: raft.LogCommand, Data: b}).(result)
}

func TestSpendOnce(t *testing.T) {
	f := testFSM(t, nil)
	if r := applyCmd(t, f, cmdSpend, spend{ID: "abc", Exp: 200, Now: 100}); !r.OK {
		t.Fatalf("first spend: %+v, want ok", r)
	}
	if r := applyCmd(t, f, cmdSpend, spend{ID: "abc", Exp: 200, Now: 150}); r.OK {
		t.Fatalf("second spend: %+v, want refused", r)
	}
	if !f.isSpent("abc", 150) || f.isSpent("abc", 201) {
		t.Fatal("isSpent: want spent until its expiry only")
	}
	// A snapshot restored into a new replica keeps it spent.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	g := testFSM(t, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap.(*fsmSnapshot).b))); err != nil {
		t.Fatal(err)
	}
	if r := applyCmd(t, g, cmdSpend, spend{ID: "abc", Exp: 200, Now: 150}); r.OK {
		t.Fatal("spend after restore: want refused")
	}
}

func TestCACompareAndSet(t *testing.T) {
	var installed []string
	f := testFSM(t, func(st ca.State) { installed = append(installed, st.Digest()) })
	c, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := c.State()
	seal := func(s ca.State) []byte {
		b, _ := json.Marshal(s)
		out, err := f.seal.seal("CA state", b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if r := applyCmd(t, f, cmdSetCA, setCA{Sealed: seal(st)}); !r.OK {
		t.Fatalf("first CA: %+v", r)
	}
	other, _ := ca.New()
	ost, _ := other.State()
	if r := applyCmd(t, f, cmdSetCA, setCA{Sealed: seal(ost)}); r.OK {
		t.Fatal("a second first CA was taken: want the cluster's kept")
	}
	if r := applyCmd(t, f, cmdSetCA, setCA{Base: "stale", Sealed: seal(ost)}); r.Err != ca.ErrStale.Error() {
		t.Fatalf("stale base: %+v, want %q", r, ca.ErrStale)
	}
	if r := applyCmd(t, f, cmdSetCA, setCA{Base: st.Digest(), Sealed: seal(ost)}); !r.OK {
		t.Fatalf("current base: %+v", r)
	}
	if len(installed) != 2 || installed[1] != ost.Digest() || f.digest() != ost.Digest() {
		t.Fatalf("installed %v, digest %s", installed, f.digest())
	}
	// Sealed with another key: refused alike everywhere, nothing installed.
	g := testFSM(t, nil)
	g.seal, _ = newSealer(bytes.Repeat([]byte{8}, KeySize))
	if r := applyCmd(t, g, cmdSetCA, setCA{Sealed: seal(st)}); r.OK || g.digest() != "" {
		t.Fatalf("wrong key: %+v", r)
	}
}
