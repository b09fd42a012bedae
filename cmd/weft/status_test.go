package main

import (
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/host"
)

// An adapter that cannot read its scheduler shows it as LAST ERROR, with
// its age and time, in preference to an older plugin failure; without
// either the cell is empty.
func TestLastErrorCell(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 42, 0, time.UTC)
	failed := now.Add(-12 * time.Second)
	crashed := now.Add(-time.Hour)
	for _, tc := range []struct {
		name string
		st   host.Status
		want string
	}{
		{"none", host.Status{Adapter: "nomad"}, ""},
		{"crash", host.Status{Adapter: "nomad", LastError: "plugin exited", LastErrorAt: crashed}, "(1h0m0s ago, 17:00:42) plugin exited"},
		{"source failing over an older crash", host.Status{Adapter: "nomad", LastError: "plugin exited", LastErrorAt: crashed,
			SourceError: "Nomad does not answer: dial tcp 127.0.0.1:4646: connection refused", SourceErrorAt: failed},
			"(12s ago, 18:00:30) now: Nomad does not answer: dial tcp 127.0.0.1:4646: connection refused"},
		{"multi-line", host.Status{Adapter: "nomad", SourceError: "a\nb", SourceErrorAt: failed}, "(12s ago, 18:00:30) now: a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastErrorCell(adapterReport(tc.st), now); got != tc.want {
				t.Errorf("cell = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWriteDropped(t *testing.T) {
	var out strings.Builder
	tw := tabwriter.NewWriter(&out, 2, 4, 2, ' ', 0)
	writeDropped(tw, []model.Dropped{
		{Adapter: "mesos", Instance: "task-1", Reason: model.ReasonNoMeshPort, Detail: "no port\nnamed mesh"},
		{Adapter: "mesos", Instance: "task-2", Reason: model.ReasonNoMeshPort, Detail: "no port named mesh"},
		{Adapter: "nomad", Instance: "web-0", Reason: model.ReasonUndeclaredUpstream, Detail: "add upstream store"},
	}, map[string]int{model.ReasonNoMeshPort: 2, model.ReasonUndeclaredUpstream: 1})
	tw.Flush()
	for _, want := range []string{
		"DROPPED: 3 (no_mesh_port 2, undeclared_upstream 1)",
		"ADAPTER  INSTANCE  REASON",
		"mesos    task-1    no_mesh_port         no port named mesh",
		"nomad    web-0     undeclared_upstream  add upstream store",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	writeDropped(tw, []model.Dropped{{Adapter: "mesos", Instance: "task-1", Reason: model.ReasonNoMeshPort, Detail: "d"}}, map[string]int{model.ReasonNoMeshPort: 700})
	tw.Flush()
	if !strings.Contains(out.String(), "DROPPED: 700 (no_mesh_port 700)") || !strings.Contains(out.String(), "the first 1 listed") {
		t.Errorf("a capped list does not say so:\n%s", out.String())
	}
	out.Reset()
	writeDropped(tw, nil, nil)
	tw.Flush()
	if out.Len() != 0 {
		t.Errorf("nothing dropped printed %q, want nothing", out.String())
	}
}

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
