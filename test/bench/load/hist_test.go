package load

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketsCoverValuesWithBoundedError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(v int64) {
		i := index(v)
		lo, w := bounds(i)
		if v < lo || v >= lo+w {
			t.Fatalf("value %d in bucket %d [%d, %d)", v, i, lo, lo+w)
		}
		if v >= exactBelow && float64(w)/float64(v) > 1.0/128 {
			t.Fatalf("value %d: bucket width %d is more than 1/128 of it", v, w)
		}
		if i >= numBuckets {
			t.Fatalf("value %d: bucket %d beyond %d", v, i, numBuckets)
		}
	}
	for v := int64(0); v < 5000; v++ {
		check(v)
	}
	for range 100000 {
		check(r.Int64N(maxValue))
	}
	check(maxValue)
	// Buckets are contiguous: each starts where the previous ends.
	for i := 1; i < numBuckets; i++ {
		plo, pw := bounds(i - 1)
		lo, _ := bounds(i)
		if plo+pw != lo {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, plo+pw)
		}
	}
}

func TestQuantilesOfUniformValues(t *testing.T) {
	h := NewHistogram()
	for v := 1; v <= 1000000; v++ {
		h.Record(time.Duration(v))
	}
	if h.Count() != 1000000 || h.Min() != 1 || h.Max() != 1000000 {
		t.Fatalf("count %d min %v max %v", h.Count(), h.Min(), h.Max())
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 1000000
		got := float64(h.Quantile(q))
		if got < want || got > want*(1+1.0/128) {
			t.Errorf("q%v = %v, want within [%v, +0.8%%]", q, got, want)
		}
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("q1 = %v, want the max %v", h.Quantile(1), h.Max())
	}
	if m := h.Mean(); m != 500000 {
		t.Errorf("mean %v, want 500000", int64(m))
	}
}

func TestQuantileOfOneValueIsThatValue(t *testing.T) {
	h := NewHistogram()
	h.Record(1234567 * time.Nanosecond)
	for _, q := range []float64{0, 0.5, 1} {
		if got := h.Quantile(q); got != 1234567 {
			t.Errorf("q%v = %d, want 1234567 (capped at the exact max)", q, got)
		}
	}
	if NewHistogram().Quantile(0.5) != 0 {
		t.Error("empty histogram: want 0")
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		v := time.Duration(r.ExpFloat64() * 1e6)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(b)
	for _, q := range []float64{0.1, 0.5, 0.99, 0.9999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %v, all %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Errorf("merged count/min/max %d/%v/%v, all %d/%v/%v", a.Count(), a.Min(), a.Max(), all.Count(), all.Min(), all.Max())
	}
}

func TestHugeAndNegativeValuesAreClamped(t *testing.T) {
	h := NewHistogram()
	h.Record(-5)
	h.Record(time.Duration(1) << 60)
	if h.Min() != 0 || h.Max() != time.Duration(maxValue) {
		t.Fatalf("min %v max %v", h.Min(), h.Max())
	}
}
