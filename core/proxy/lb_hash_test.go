package proxy

import (
	"fmt"
	"testing"
)

func hashEps(ids ...string) []*endpoint {
	var out []*endpoint
	for _, id := range ids {
		out = append(out, &endpoint{id: id, addr: id + ":1"})
	}
	return out
}

// TestConsistentHashing checks, for both algorithms, that keys spread over
// every endpoint, that a key stays put, and that removing one endpoint of
// four moves only the keys it held.
func TestConsistentHashing(t *testing.T) {
	builders := map[string]func([]*endpoint) hashBalancer{
		"ring_hash": func(e []*endpoint) hashBalancer { return newRingHash(e, nil) },
		"maglev":    func(e []*endpoint) hashBalancer { return newMaglev(e, nil) },
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
				h := hash64(fmt.Sprint("user-", i))
				e := before.pickHash(h, nil)
				if again := before.pickHash(h, nil); again != e {
					t.Fatalf("key %d moved from %s to %s with nothing changed", i, e.id, again.id)
				}
				count[e.id]++
				if e.id != "d" && after.pickHash(h, nil).id != e.id {
					moved++
				}
			}
			// Each holds a quarter; ring hashing with 128 points each is
			// within ±40% of it, maglev within a few percent.
			for _, e := range all {
				if c := count[e.id]; c < keys/4*6/10 || c > keys/4*14/10 {
					t.Errorf("endpoint %s holds %d of %d keys, want about %d", e.id, c, keys, keys/4)
				}
			}
			if limit := keys / 50; moved > limit {
				t.Errorf("removing one endpoint moved %d keys that it did not hold, want at most %d", moved, limit)
			}
			skip := map[*endpoint]bool{all[0]: true, all[1]: true, all[2]: true}
			if e := before.pickHash(1, skip); e != all[3] {
				t.Errorf("with three endpoints skipped, got %v, want the fourth", e)
			}
		})
	}
}
