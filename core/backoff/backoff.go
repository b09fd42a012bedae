package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields growing delays between attempts. The zero value is not
// usable; call New. A Backoff is not safe for concurrent use.
type Backoff struct {
	min, max time.Duration
	next     time.Duration
	// Jitter is the fraction of each delay drawn at random and
	// subtracted from it (0.2: a delay d lies in [0.8d, d]), so that many
	// clients failing together do not retry together. New sets 0.2.
	Jitter float64
}

// New returns a Backoff from min to max. A min of 0 or less is taken as
// 100 ms, a max below min as min.
func New(min, max time.Duration) *Backoff {
	if min <= 0 {
		min = 100 * time.Millisecond
	}
	if max < min {
		max = min
	}
	return &Backoff{min: min, max: max, next: min, Jitter: 0.2}
}

// Next returns the delay before the next attempt and doubles the one
// after it, up to the maximum.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	if b.Jitter > 0 {
		d -= time.Duration(rand.Float64() * b.Jitter * float64(d))
	}
	return d
}

// Reset goes back to the minimum delay (after a success).
func (b *Backoff) Reset() { b.next = b.min }

// Max returns the largest delay Next returns.
func (b *Backoff) Max() time.Duration { return b.max }

// Wait sleeps for Next() or until ctx ends; it reports whether the delay
// passed (false: ctx ended first).
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Spread returns a delay drawn uniformly from [0, d) ("full jitter"): what
// a client waits before its first attempt after something many clients
// share failed at once (a controller replica died), so that they do not
// all arrive at the next one in the same instant. 0 for d <= 0.
func Spread(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}
