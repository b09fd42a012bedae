package host

import (
	"testing"
	"time"
)

func TestOptionsDefaults(t *testing.T) {
	tests := []struct {
		name             string
		min, max         time.Duration
		wantMin, wantMax time.Duration
	}{
		{name: "both unset", wantMin: DefaultMinBackoff, wantMax: DefaultMaxBackoff},
		{name: "both set", min: time.Second, max: time.Minute, wantMin: time.Second, wantMax: time.Minute},
		{name: "small max", max: 100 * time.Millisecond, wantMin: 100 * time.Millisecond, wantMax: 100 * time.Millisecond},
		{name: "large min", min: time.Minute, wantMin: time.Minute, wantMax: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Name: "x", MinBackoff: tt.min, MaxBackoff: tt.max}
			o.defaults()
			if o.MinBackoff != tt.wantMin || o.MaxBackoff != tt.wantMax {
				t.Errorf("backoff = %v..%v, want %v..%v", o.MinBackoff, o.MaxBackoff, tt.wantMin, tt.wantMax)
			}
			if o.Logger == nil {
				t.Error("no default logger")
			}
		})
	}
}

func TestNextBackoff(t *testing.T) {
	o := Options{Name: "x"}
	o.defaults()
	b := newBackoff(o)
	b.Jitter = 0
	var got []time.Duration
	for len(got) < 10 {
		got = append(got, b.Next())
	}
	if got[0] != 250*time.Millisecond || got[1] != 500*time.Millisecond || got[len(got)-1] != 30*time.Second {
		t.Errorf("backoff sequence %v, want doubling from 250ms capped at 30s", got)
	}
}
