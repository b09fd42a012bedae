package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesToMaxAndResets(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	b.Jitter = 0
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("attempt %d: delay %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond {
		t.Fatalf("after Reset: delay %v, want 100ms", got)
	}
}

func TestJitterStaysInRange(t *testing.T) {
	b := New(time.Second, time.Second)
	for i := 0; i < 1000; i++ {
		if d := b.Next(); d < 800*time.Millisecond || d > time.Second {
			t.Fatalf("delay %v outside [0.8s, 1s]", d)
		}
	}
}

func TestNewFixesBounds(t *testing.T) {
	tests := []struct {
		name          string
		min, max      time.Duration
		wantMin, wMax time.Duration
	}{
		{"zero min", 0, time.Second, 100 * time.Millisecond, time.Second},
		{"negative min", -time.Second, time.Second, 100 * time.Millisecond, time.Second},
		{"max below min", time.Second, time.Millisecond, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(tt.min, tt.max)
			b.Jitter = 0
			if d := b.Next(); d != tt.wantMin {
				t.Errorf("first delay %v, want %v", d, tt.wantMin)
			}
			if b.Max() != tt.wMax {
				t.Errorf("max %v, want %v", b.Max(), tt.wMax)
			}
		})
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	b := New(time.Hour, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Wait(ctx) {
		t.Fatal("Wait reported the delay passed although ctx had ended")
	}
}

func TestSpreadCoversItsRange(t *testing.T) {
	if Spread(0) != 0 || Spread(-time.Second) != 0 {
		t.Fatal("Spread of 0 or less is not 0")
	}
	// 1,000 draws over [0, 1s): every tenth of the range gets some (a
	// herd spread, not bunched), none falls outside it.
	var buckets [10]int
	for range 1000 {
		d := Spread(time.Second)
		if d < 0 || d >= time.Second {
			t.Fatalf("Spread(1s) = %v, outside [0, 1s)", d)
		}
		buckets[d/(100*time.Millisecond)]++
	}
	for i, n := range buckets {
		// 100 expected in each; below 40 happens with a chance far
		// below 1e-9.
		if n < 40 {
			t.Errorf("tenth %d of the range got %d of 1000 draws: %v", i, n, buckets)
		}
	}
}
