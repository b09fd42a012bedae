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
