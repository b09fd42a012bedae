package main

import (
	"testing"

	"github.com/weftmesh/weft/core/api"
)

func TestHealthCell(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   api.InstanceReport
		want string
	}{
		{"from the scheduler", api.InstanceReport{Health: "passing", HealthSource: api.HealthFromScheduler, SidecarCheck: "passing"}, "passing"},
		{"critical by the scheduler, failing its check", api.InstanceReport{Health: "critical", HealthSource: api.HealthFromScheduler, SidecarCheck: "failing", HealthReason: "x"}, "critical"},
		{"critical by its sidecar's check", api.InstanceReport{Health: "critical", HealthSource: api.HealthFromSidecarCheck, SidecarCheck: "failing", HealthReason: "GET /health: 500"},
			"critical (sidecar check: GET /health: 500)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := healthCell(tc.in); got != tc.want {
				t.Errorf("healthCell = %q, want %q", got, tc.want)
			}
		})
	}
}
