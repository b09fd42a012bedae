package retry

import (
	"testing"
	"time"
)

func TestRetryBudget(t *testing.T) {
	now := time.Unix(5000, 0)
	b := &Budget{now: func() time.Time { return now }}
	for range 10 {
		b.request()
	}
	// 20% of 10 requests, no minimum: two retries.
	for i := range 2 {
		if !b.allow(20, 0) {
			t.Fatalf("retry %d refused within the budget", i)
		}
	}
	if b.allow(20, 0) {
		t.Error("a third retry passed a budget of two")
	}
	// The minimum adds one a second over the window: ten more.
	n := 0
	for b.allow(20, 1) {
		n++
	}
	if n != 10 {
		t.Errorf("%d retries from a minimum of 1 a second, want 10", n)
	}
	// Eleven seconds later the window is empty again.
	now = now.Add(11 * time.Second)
	if b.allow(20, 0) {
		t.Error("a retry passed with no requests in the window")
	}
	b.request()
	for range 4 {
		b.request()
	}
	if !b.allow(20, 0) {
		t.Error("a retry refused with 5 requests in the new window")
	}
}
