package registry

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/model"
)

// randRecord is record id with random contents; one in eight is invalid
// (a service name that is no DNS label).
func randRecord(r *rand.Rand, id string) model.Instance {
	in := inst(id, []string{"api", "web", "store"}[r.IntN(3)])
	in.Address = fmt.Sprintf("127.0.0.%d", 2+r.IntN(4))
	if r.IntN(8) == 0 {
		in.Service = "Bad_Name"
	}
	if r.IntN(3) == 0 {
		in.Meta = map[string]string{"version": fmt.Sprint(r.IntN(2))}
	}
	return in
}

// deltaOf is what next changed from prev (IDs unique in both).
func deltaOf(prev, next []model.Instance) (upserts []model.Instance, removed []string) {
	had := map[string]model.Instance{}
	for _, in := range prev {
		had[in.ID] = in
	}
	now := map[string]bool{}
	for _, in := range next {
		now[in.ID] = true
		if old, ok := had[in.ID]; !ok || !old.Equal(in) {
			upserts = append(upserts, in)
		}
	}
	for _, in := range prev {
		if !now[in.ID] {
			removed = append(removed, in.ID)
		}
	}
	return upserts, removed
}

func problemStrings(ps []Problem) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Adapter+" "+p.ID+" "+p.Reason+" "+p.Err.Error())
	}
	sort.Strings(out)
	return out
}

// TestDeltaMatchesWholeSnapshots applies seeded random sequences of
// snapshots to two registries: one takes every snapshot whole, the other
// the delta each carries (with, now and then, a whole snapshot to resync,
// a delta from a snapshot it never took, which it must ignore, and a
// snapshot holding an ID twice, after which no delta may follow). After
// every step both hold the same entries with the same revisions, report
// the same problems and the same change, and ChangedSince names the same
// records.
func TestDeltaMatchesWholeSnapshots(t *testing.T) {
	for seed := range uint64(16) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 17))
			whole, delta := New(), New()
			snaps := map[string][]model.Instance{}
			seqs := map[string]uint64{}
			var seq uint64
			var cursorWhole, cursorDelta uint64
			deltasTaken := 0
			for step := range 400 {
				a := []string{"local", "nomad"}[r.IntN(2)]
				prev := snaps[a]
				next := slices.Clone(prev)
				for range 1 + r.IntN(3) {
					switch k := r.IntN(10); {
					case k < 4 || len(next) == 0: // add: an ID may be the other adapter's
						id := fmt.Sprintf("i-%d", r.IntN(30))
						if !slices.ContainsFunc(next, func(in model.Instance) bool { return in.ID == id }) {
							next = append(next, randRecord(r, id))
						}
					case k < 6:
						i := r.IntN(len(next))
						next = append(next[:i], next[i+1:]...)
					default:
						i := r.IntN(len(next))
						next[i] = randRecord(r, next[i].ID)
					}
				}
				seq++
				s := model.Snapshot{Adapter: a, Instances: next, Seq: seq}
				what := "delta"
				switch k := r.IntN(20); {
				case k == 0:
					what = "whole snapshot (resync)"
				case k == 1:
					up, rm := deltaOf(prev, next)
					s.Delta = &model.SnapshotDelta{From: seqs[a] + 1000, Upserts: up, Removed: rm}
					what = "delta from a snapshot never taken"
				case k == 2 && len(next) > 0:
					s.Instances = append(slices.Clone(next), randRecord(r, next[0].ID))
					what = "whole snapshot with a duplicate ID"
				default:
					if seqs[a] != 0 {
						up, rm := deltaOf(prev, next)
						s.Delta = &model.SnapshotDelta{From: seqs[a], Upserts: up, Removed: rm}
					}
				}
				snaps[a], seqs[a] = next, seq
				if what == "whole snapshot with a duplicate ID" {
					snaps[a] = s.Instances[:len(s.Instances)-1]
				}
				if s.Delta != nil && what == "delta" {
					deltasTaken++
				}
				wholeChanged, wholeProblems := whole.Update(model.Snapshot{Adapter: a, Instances: s.Instances})
				deltaChanged, deltaProblems := delta.Update(s)
				if wholeChanged != deltaChanged {
					t.Fatalf("step %d (%s of %s): changed %v whole, %v by delta", step, what, a, wholeChanged, deltaChanged)
				}
				if w, d := problemStrings(wholeProblems), problemStrings(deltaProblems); !reflect.DeepEqual(w, d) {
					t.Fatalf("step %d (%s of %s): problems\nwhole: %q\ndelta: %q", step, what, a, w, d)
				}
				if w, d := whole.Entries(), delta.Entries(); !reflect.DeepEqual(w, d) {
					t.Fatalf("step %d (%s of %s): entries differ\nwhole: %v\ndelta: %v", step, what, a, w, d)
				}
				wk, wrev, wok := whole.ChangedSince(cursorWhole)
				dk, drev, dok := delta.ChangedSince(cursorDelta)
				if !wok || !dok || wrev != drev {
					t.Fatalf("step %d: ChangedSince: whole ok %v rev %d, delta ok %v rev %d", step, wok, wrev, dok, drev)
				}
				sortKeys(wk)
				sortKeys(dk)
				if !reflect.DeepEqual(wk, dk) {
					t.Fatalf("step %d (%s of %s): changed records\nwhole: %v\ndelta: %v", step, what, a, wk, dk)
				}
				cursorWhole, cursorDelta = wrev, drev
			}
			if deltasTaken < 200 {
				t.Fatalf("only %d of 400 steps were deltas: the test did not test them", deltasTaken)
			}
		})
	}
}

func sortKeys(ks []Key) {
	slices.SortFunc(ks, func(a, b Key) int {
		if n := strings.Compare(a.Adapter, b.Adapter); n != 0 {
			return n
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// TestChangedSince: the journal names what each update changed, each
// record once, and says when it no longer remembers back that far.
func TestChangedSince(t *testing.T) {
	r := New()
	r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{inst("a", "api"), inst("b", "api")}})
	rev := r.Rev()
	moved := inst("a", "api")
	moved.Address = "127.0.0.9"
	r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{moved, inst("c", "web")}})
	r.Update(model.Snapshot{Adapter: "local", Instances: []model.Instance{moved, inst("c", "web")}}) // no change
	keys, now, ok := r.ChangedSince(rev)
	sortKeys(keys)
	if want := []Key{{"local", "a"}, {"local", "b"}, {"local", "c"}}; !ok || now != rev+1 || !reflect.DeepEqual(keys, want) {
		t.Fatalf("ChangedSince(%d) = %v, %d, %v; want %v, %d, true", rev, keys, now, ok, want, rev+1)
	}
	if keys, _, ok := r.ChangedSince(now); !ok || len(keys) != 0 {
		t.Fatalf("ChangedSince(now) = %v, %v; want nothing, true", keys, ok)
	}
	// More changes than the journal holds: a consumer behind them is told
	// to take every entry.
	big := make([]model.Instance, maxJournal+1)
	for i := range big {
		big[i] = inst(fmt.Sprintf("x-%d", i), "api")
	}
	r.Update(model.Snapshot{Adapter: "local", Instances: big})
	if _, _, ok := r.ChangedSince(now); ok {
		t.Fatalf("ChangedSince after %d changes says it remembers them all", len(big))
	}
	if keys, _, ok := r.ChangedSince(r.Rev()); !ok || len(keys) != 0 {
		t.Fatalf("ChangedSince(Rev) after the journal restarted = %v, %v; want nothing, true", keys, ok)
	}
}
