package policy

import (
	"slices"
	"testing"
	"time"
)

// TestPlanShowsHealthCheck: adding, changing or removing a service's
// health check is a change of that service in a plan.
func TestPlanShowsHealthCheck(t *testing.T) {
	hc := &HealthCheck{Kind: HealthHTTP, HTTPPath: "/healthz", Interval: 2 * time.Second, Timeout: time.Second, UnhealthyThreshold: 2, HealthyThreshold: 1}
	slower := *hc
	slower.Interval = 5 * time.Second
	for _, tc := range []struct {
		name     string
		old, new *HealthCheck
		changed  bool
	}{
		{"added", nil, hc, true},
		{"removed", hc, nil, true},
		{"interval", hc, &slower, true},
		{"same", hc, &HealthCheck{Kind: HealthHTTP, HTTPPath: "/healthz", Interval: 2 * time.Second, Timeout: time.Second, UnhealthyThreshold: 2, HealthyThreshold: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := func(hc *HealthCheck) *Policy {
				return &Policy{Services: map[string]Service{"api": {Name: "api", Protocol: HTTP, HealthCheck: hc}}}
			}
			pl := Diff(pol(tc.old), pol(tc.new))
			got := len(pl.Services) == 1 && slices.Contains(pl.Services[0].Fields, "health_check")
			if got != tc.changed {
				t.Errorf("plan %+v: health_check changed = %v, want %v", pl.Services, got, tc.changed)
			}
		})
	}
}
