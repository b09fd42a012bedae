package ratelimit

import (
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := &tokenBucket{rate: 2, burst: 3}
	for i := range 3 {
		if ok, _ := b.take(t0); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	ok, wait := b.take(t0)
	if ok || wait != 500*time.Millisecond {
		t.Errorf("past the burst: %v, wait %v; want refused, 500ms", ok, wait)
	}
	if ok, _ := b.take(t0.Add(500 * time.Millisecond)); !ok {
		t.Error("a token did not come back after 1/rate")
	}
	if ok, _ := b.take(t0.Add(time.Hour)); !ok {
		t.Error("refused after an hour")
	}
	// The bucket holds burst tokens at most, however long it waited.
	for i := range 2 {
		if ok, _ := b.take(t0.Add(time.Hour)); !ok {
			t.Fatalf("take %d after a refill refused", i)
		}
	}
	if ok, _ := b.take(t0.Add(time.Hour)); ok {
		t.Error("the bucket held more than its burst")
	}
	if got := RetryAfter(1500 * time.Millisecond); got != "2" {
		t.Errorf("Retry-After for 1.5s = %q, want 2", got)
	}
	if got := RetryAfter(time.Millisecond); got != "1" {
		t.Errorf("Retry-After for 1ms = %q, want 1", got)
	}
}
