package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// fakeBudgets answers each budget report with the next of its answers
// (an error when they run out), handing the report to the test.
type fakeBudgets struct {
	reports chan *meshapi.BudgetReport
	answers chan *meshapi.BudgetGrants
}

func (f *fakeBudgets) Budgets(ctx context.Context, r *meshapi.BudgetReport) (*meshapi.BudgetGrants, error) {
	select {
	case f.reports <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case g := <-f.answers:
		return g, nil
	default:
		return nil, errors.New("the controller is away")
	}
}

// A global limit enforces the share the controller grants, reports what
// it took, and falls back to a fair share (the limit over the instances
// of its last grant) once no grant came for three intervals.
func TestGlobalLimitEnforcesItsShare(t *testing.T) {
	m := newMesh(t, httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	cfg := serverConfig(httpApp(t, false), meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
	cfg.Inbound.RateLimits = []*meshapi.RateLimit{{Name: "all", RequestsPerSecond: 1000, Burst: 10, Global: true}}
	f := &fakeBudgets{reports: make(chan *meshapi.BudgetReport, 1), answers: make(chan *meshapi.BudgetGrants, 1)}
	// The first grant: a share of one request in 1000s, two at once,
	// among 4 instances; report every 100ms.
	f.answers <- &meshapi.BudgetGrants{ReportEveryMs: 100, Grants: []*meshapi.BudgetGrant{{Limit: "all", RequestsPerSecond: 0.001, Burst: 2, Instances: 4}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.server.RunBudgets(ctx, f)
	apply(t, m.server, 2, cfg)

	next := func() *meshapi.BudgetReport {
		t.Helper()
		select {
		case r := <-f.reports:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no budget report within 10s")
			return nil
		}
	}
	// A new global limit is reported at once, not after an interval.
	start := time.Now()
	if r := next(); r.GetInstanceId() != "api-1" || len(r.GetUsage()) != 1 || r.GetUsage()[0].GetLimit() != "all" {
		t.Fatalf("first report %v, want one of api-1's limit \"all\"", r)
	}
	t.Logf("first report %s after the configuration", time.Since(start))
	// The grant is in force once the next report is asked for.
	if r := next(); r.GetUsage()[0].GetRequests() != 0 {
		t.Fatalf("second report %v, want no requests yet", r)
	}
	c := httpClient(false)
	var codes []int
	for range 3 {
		resp, _ := get(t, c, "http://"+m.outbound+"/", nil)
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Errorf("three requests under a share of burst 2: %v, want [200 200 429]", codes)
	}
	// The report after them counts them (a report may have gone out
	// between the requests: sum until all three are in).
	var req, adm uint64
	for req < 3 {
		u := next().GetUsage()[0]
		req, adm = req+u.GetRequests(), adm+u.GetAdmitted()
	}
	if req != 3 || adm != 2 {
		t.Errorf("reported %d requests, %d admitted; want 3, 2", req, adm)
	}
	// No more grants: three intervals on, a fair share of 1000/4.
	waited := time.Now()
	for !strings.Contains(metricsOf(t, m.server.AdminHandler()), `weft_rate_limit_global_share{limit="all"} 250`) {
		next()
		if time.Since(waited) > 10*time.Second {
			t.Fatalf("no fair share within 10s:\n%s", metricsOf(t, m.server.AdminHandler()))
		}
	}
	t.Logf("fair share after %s without a grant", time.Since(waited))
	// The bucket, empty from the tiny share, refills at 250/s: a
	// request is admitted again within a few milliseconds.
	var got []int
	for len(got) < 100 {
		resp, _ := get(t, c, "http://"+m.outbound+"/", nil)
		if got = append(got, resp.StatusCode); resp.StatusCode == 200 {
			break
		}
	}
	if got[len(got)-1] != 200 {
		t.Errorf("100 requests under the fair share of 250/s, none admitted: %v", got)
	}
	if !strings.Contains(m.serverLog.String(), "enforcing a fair share") {
		t.Error("the sidecar did not log that it fell back to a fair share")
	}
}

func metricsOf(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}
