package budget

import (
	"math"
	"testing"
	"time"
)

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      float64
		demand []float64
		want   []float64
	}{
		{"no members", 100, nil, nil},
		{"one instance gets it all", 100, []float64{250}, []float64{100}},
		{"one idle instance gets it all", 100, []float64{0}, []float64{100}},
		// 60/30/10 of 200 a second against 100: each admits half.
		{"uneven, contended", 100, []float64{120, 60, 20}, []float64{60, 30, 10}},
		// Below the limit: each its demand, the spare 40 split evenly.
		{"uneven, below the limit", 100, []float64{30, 20, 10}, []float64{30 + 40.0/3, 20 + 40.0/3, 10 + 40.0/3}},
		{"all idle: an even split", 90, []float64{0, 0, 0}, []float64{30, 30, 30}},
		// Idle instances keep the floor (5% of an even split, 100/4*0.05
		// = 1.25); the busy ones divide the rest by demand.
		{"idle instances keep the floor", 100, []float64{300, 100, 0, 0}, []float64{(100 - 2.5) * 0.75, (100 - 2.5) * 0.25, 1.25, 1.25}},
		// A small demand below the floor is raised to it.
		{"tiny demand gets the floor", 100, []float64{1000, 0.1}, []float64{97.5, 2.5}},
		// Fewer requests a second than instances: every one a part of
		// it, in proportion, none zero.
		{"N smaller than the instances", 2, []float64{10, 10, 10, 10, 0}, []float64{(2 - 0.02) / 4, (2 - 0.02) / 4, (2 - 0.02) / 4, (2 - 0.02) / 4, 0.02}},
		{"negative and NaN demand count as none", 10, []float64{-5, math.NaN()}, []float64{5, 5}},
		{"a zero limit grants nothing", 0, []float64{5, 5}, []float64{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Allocate(tc.n, tc.demand)
			if len(got) != len(tc.want) {
				t.Fatalf("Allocate(%v, %v) = %v, want %v", tc.n, tc.demand, got, tc.want)
			}
			var sum float64
			for i := range got {
				sum += got[i]
				if math.Abs(got[i]-tc.want[i]) > 1e-9 {
					t.Errorf("Allocate(%v, %v) = %v, want %v", tc.n, tc.demand, got, tc.want)
					break
				}
				if tc.n > 0 && got[i] <= 0 {
					t.Errorf("member %d got %v: a share is never zero", i, got[i])
				}
			}
			if len(got) > 0 && math.Abs(sum-tc.n) > 1e-9 {
				t.Errorf("shares %v sum to %v, not the limit %v", got, sum, tc.n)
			}
		})
	}
}

func TestBurstShare(t *testing.T) {
	for _, tc := range []struct {
		burst    uint32
		n, share float64
		want     uint32
	}{
		{20, 100, 50, 13}, // a quarter second of 50/s
		{20, 100, 10, 3},  // a quarter second of 10/s, above the proportional 2
		{20, 100, 1, 1},   // at least one
		{20, 100, 0, 1},
		{20, 100, 150, 20},    // never above the burst
		{100, 1000, 500, 100}, // a quarter second is 125: capped at the burst
		{5, 0, 1, 1},
	} {
		if got := BurstShare(tc.burst, tc.n, tc.share); got != tc.want {
			t.Errorf("BurstShare(%d, %v, %v) = %d, want %d", tc.burst, tc.n, tc.share, got, tc.want)
		}
	}
}

func TestPool(t *testing.T) {
	p := NewPool(Options{ReportEvery: time.Second})
	k := Key{"default", "api", "all"}
	t0 := time.Unix(1000, 0)
	// One member: the whole limit.
	if s, n := p.Grant(k, "api-0", 100, 120, time.Second, t0); s != 100 || n != 1 {
		t.Fatalf("first member: %v of 1 among %d, want 100 among 1", s, n)
	}
	// A second joins, idle: it gets the floor, api-0 the rest.
	if s, n := p.Grant(k, "api-1", 100, 0, time.Second, t0); n != 2 || math.Abs(s-2.5) > 1e-9 {
		t.Fatalf("idle joiner: %v among %d, want 2.5 among 2", s, n)
	}
	// api-1's demand rises to api-0's (smoothed: half of 120 the first
	// time, all of it the next).
	p.Grant(k, "api-1", 100, 120, time.Second, t0.Add(time.Second))
	p.Grant(k, "api-0", 100, 120, time.Second, t0.Add(time.Second))
	s, _ := p.Grant(k, "api-1", 100, 120, time.Second, t0.Add(2*time.Second))
	if s <= 40 || s >= 50 {
		t.Errorf("api-1 after two reports of 120/s: %v, want between 40 and 50 (converging to 50)", s)
	}
	s, _ = p.Grant(k, "api-1", 100, 120, time.Second, t0.Add(3*time.Second))
	if s0, _ := p.Grant(k, "api-0", 100, 120, time.Second, t0.Add(3*time.Second)); math.Abs(s0+s-100) > 1 {
		t.Errorf("shares %v + %v, want about 100", s0, s)
	}
	// Another limit of the same service is apart.
	if s, n := p.Grant(Key{"default", "api", "other"}, "api-0", 10, 0, time.Second, t0); s != 10 || n != 1 {
		t.Errorf("other limit: %v among %d, want 10 among 1", s, n)
	}
	// api-1 stops reporting: after three intervals api-0 is alone.
	if s, n := p.Grant(k, "api-0", 100, 120, time.Second, t0.Add(7*time.Second)); s != 100 || n != 1 {
		t.Errorf("after api-1 expired: %v among %d, want 100 among 1", s, n)
	}
	if m := p.Snapshot(k); len(m) != 1 || m[0].Instance != "api-0" || m[0].Share != 100 {
		t.Errorf("snapshot %+v, want api-0 alone with 100", m)
	}
	// Long after, the limits nobody reports for are gone.
	p.Grant(Key{"default", "web", "x"}, "web-0", 1, 0, time.Second, t0.Add(time.Hour))
	if m := p.Snapshot(k); m != nil {
		t.Errorf("an expired limit is still kept: %+v", m)
	}
}
