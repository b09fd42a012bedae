package load

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations (nanoseconds) in log-linear buckets, in the
// spirit of HdrHistogram: values below 2^precisionBits are exact, above
// that every power-of-two range is split into 2^(precisionBits-1) equal
// buckets, so a recorded value is known to within 1/128 (under 0.8%) of
// itself. Memory is fixed (a few thousand counters) whatever the count.
// A Histogram is not safe for concurrent use: give each worker its own and
// Merge them.
type Histogram struct {
	counts []uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

const (
	precisionBits = 8
	exactBelow    = 1 << precisionBits       // 256 exact values
	half          = 1 << (precisionBits - 1) // buckets per power of two
	// maxValue is the largest value kept apart (about 73 minutes);
	// larger ones are clamped.
	maxValue = int64(1)<<42 - 1
)

var numBuckets = index(maxValue) + 1

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// index returns the bucket of v (0 <= v <= maxValue).
func index(v int64) int {
	if v < exactBelow {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - precisionBits // >= 1
	return exactBelow + (shift-1)*half + int(v>>uint(shift)) - half
}

// bounds returns the smallest value of bucket i and its width.
func bounds(i int) (lo, width int64) {
	if i < exactBelow {
		return int64(i), 1
	}
	shift := (i-exactBelow)/half + 1
	top := int64((i-exactBelow)%half + half)
	return top << uint(shift), int64(1) << uint(shift)
}

// Record adds one value.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if v > maxValue {
		v = maxValue
	}
	h.counts[index(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Merge adds every value of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is how many values were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max are exact.
func (h *Histogram) Min() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact mean.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0..1): the highest value of
// the bucket holding the ceil(q*count)-th smallest value, never above the
// exact maximum. Like HdrHistogram it errs high, by at most a bucket.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bounds(i)
			return time.Duration(min(lo+w-1, h.max))
		}
	}
	return time.Duration(h.max)
}
