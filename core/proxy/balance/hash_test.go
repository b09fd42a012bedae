package balance

import (
	"fmt"
	"testing"
)

func hashEps(ids ...string) []*Endpoint {
	var out []*Endpoint
	for _, id := range ids {
		out = append(out, &Endpoint{ID: id, Addr: id + ":1"})
	}
	return out
}

// TestConsistentHashing checks, for both algorithms, that keys spread over
// every Endpoint, that a key stays put, and that removing one Endpoint of
// four moves only the keys it held.
func TestConsistentHashing(t *testing.T) {
	builders := map[string]func([]*Endpoint) HashBalancer{
		"ring_hash": func(e []*Endpoint) HashBalancer { return newRingHash(e, nil) },
		"maglev":    func(e []*Endpoint) HashBalancer { return newMaglev(e, nil) },
	}
	for name, build := range builders {
		t.Run(name, func(t *testing.T) {
			all := hashEps("a", "b", "c", "d")
			before := build(all)
			after := build(all[:3]) // "d" is gone
			const keys = 4000
			count := map[string]int{}
			moved := 0
			for i := range keys {
				h := Hash(fmt.Sprint("user-", i))
				e := before.PickHash(h, nil)
				if again := before.PickHash(h, nil); again != e {
					t.Fatalf("key %d moved from %s to %s with nothing changed", i, e.ID, again.ID)
				}
				count[e.ID]++
				if e.ID != "d" && after.PickHash(h, nil).ID != e.ID {
					moved++
				}
			}
			// Each holds a quarter; ring hashing with 128 points each is
			// within ±40% of it, maglev within a few percent.
			for _, e := range all {
				if c := count[e.ID]; c < keys/4*6/10 || c > keys/4*14/10 {
					t.Errorf("Endpoint %s holds %d of %d keys, want about %d", e.ID, c, keys, keys/4)
				}
			}
			if limit := keys / 50; moved > limit {
				t.Errorf("removing one Endpoint moved %d keys that it did not hold, want at most %d", moved, limit)
			}
			skip := map[*Endpoint]bool{all[0]: true, all[1]: true, all[2]: true}
			if e := before.PickHash(1, skip); e != all[3] {
				t.Errorf("with three endpoints skipped, got %v, want the fourth", e)
			}
		})
	}
}
