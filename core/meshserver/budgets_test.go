package meshserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
)

// withLimits is an instance's configuration with a global limit "all"
// (100/s, burst 20) and a local one.
func withLimits(id string) *meshapi.ProxyConfig {
	c := cfg(id, "api", 1)
	c.Inbound.RateLimits = []*meshapi.RateLimit{
		{Name: "all", RequestsPerSecond: 100, Burst: 20, Global: true},
		{Name: "local", RequestsPerSecond: 5, Burst: 5},
	}
	return c
}

// A sidecar gets a share of its own instance's global limits only, at the
// rates of the configuration the server holds, and the instances of the
// service divide the limit between them.
func TestBudgets(t *testing.T) {
	h, _, c := startHealth(t) // c holds api-0's certificate
	h.addInstance("api-1", "api")
	cert1, err := join(t, h.dial(t, nil), "api-1", h.token(t, "api-1", "api"))
	if err != nil {
		t.Fatal(err)
	}
	c1 := h.dial(t, cert1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	report := func(id string, requests uint64) *meshapi.BudgetReport {
		return &meshapi.BudgetReport{InstanceId: id, WindowMs: 1000, Usage: []*meshapi.BudgetUsage{{Limit: "all", Requests: requests}}}
	}

	for _, tc := range []struct {
		name string
		r    *meshapi.BudgetReport
		code codes.Code
	}{
		{"no configuration yet", report("api-0", 1), codes.FailedPrecondition},
		{"another service's instance", report("store-0", 1), codes.PermissionDenied},
		{"no instance", report("", 1), codes.InvalidArgument},
		{"too many limits", &meshapi.BudgetReport{InstanceId: "api-0", Usage: make([]*meshapi.BudgetUsage, MaxBudgetUsages+1)}, codes.InvalidArgument},
		{"a window too long", &meshapi.BudgetReport{InstanceId: "api-0", WindowMs: 61000}, codes.InvalidArgument},
		{"more admitted than requests", &meshapi.BudgetReport{InstanceId: "api-0", Usage: []*meshapi.BudgetUsage{{Limit: "all", Requests: 1, Admitted: 2}}}, codes.InvalidArgument},
		{"a name too long", &meshapi.BudgetReport{InstanceId: "api-0", Usage: []*meshapi.BudgetUsage{{Limit: strings.Repeat("a", MaxReportName+1)}}}, codes.InvalidArgument},
	} {
		if _, err := c.Budgets(ctx, tc.r); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}

	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": withLimits("api-0"), "api-1": withLimits("api-1")})
	// api-0 alone: the whole limit, and nothing for the local one.
	g, err := c.Budgets(ctx, report("api-0", 300))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Grants) != 1 || g.Grants[0].Limit != "all" || g.Grants[0].RequestsPerSecond != 100 || g.Grants[0].Burst != 20 || g.Grants[0].Instances != 1 || g.ReportEveryMs != 1000 {
		t.Fatalf("api-0 alone: %v, want all of \"all\" (100/s, burst 20) among 1, report every 1000ms", g)
	}
	// api-1 joins with a third of api-0's demand: it gets a quarter
	// (proportional to demand, 100/300 of it), api-0 at its next report
	// three quarters.
	g1, err := c1.Budgets(ctx, report("api-1", 100))
	if err != nil {
		t.Fatal(err)
	}
	g0, err := c.Budgets(ctx, report("api-0", 300))
	if err != nil {
		t.Fatal(err)
	}
	s0, s1 := g0.Grants[0].RequestsPerSecond, g1.Grants[0].RequestsPerSecond
	if s0 != 75 || s1 != 25 || g0.Grants[0].Instances != 2 || g0.Grants[0].Burst != 19 || g1.Grants[0].Burst != 7 {
		t.Errorf("api-0 %v, api-1 %v; want 75/s (burst 19: a quarter second) and 25/s (burst 7) among 2", g0, g1)
	}
}
