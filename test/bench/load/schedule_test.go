package load

import (
	"sort"
	"testing"
	"time"
)

func TestScheduleInterleavesConnectionsAtTheRate(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		rate  float64
		conns int
	}{{1000, 1}, {1000, 16}, {1000, 64}, {333, 7}, {50000, 2}} {
		s := Schedule{Start: start, Rate: tc.rate, Conns: tc.conns}
		d := 2 * time.Second
		var all []time.Time
		for c := range tc.conns {
			n := s.Count(c, d)
			for j := range n {
				due := s.Due(c, j)
				if j > 0 && !due.After(s.Due(c, j-1)) {
					t.Fatalf("rate %v conns %d: conn %d request %d not after the previous", tc.rate, tc.conns, c, j)
				}
				all = append(all, due)
			}
		}
		if want := int(tc.rate * d.Seconds()); len(all) != want {
			t.Errorf("rate %v conns %d: %d requests in %v, want %d", tc.rate, tc.conns, len(all), d, want)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
		period := time.Duration(1e9 / tc.rate)
		for k, due := range all {
			want := start.Add(time.Duration(float64(k) * 1e9 / tc.rate))
			if due != want {
				t.Fatalf("rate %v conns %d: request %d due %v, want %v (period %v)", tc.rate, tc.conns, k, due.Sub(start), want.Sub(start), period)
			}
		}
	}
}
