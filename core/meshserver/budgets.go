package meshserver

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/budget"
	"github.com/weftmesh/weft/core/meshapi"
)

// Limits on a budget report, checked before it is counted.
const (
	// MaxBudgetUsages is the most limits one budget report may name.
	MaxBudgetUsages = 64
	// MaxBudgetWindow is the longest window a budget report may cover.
	MaxBudgetWindow = 60 * time.Second
)

// Budgets takes a sidecar's report of its global rate limits and answers
// with its share of each (core/budget). The client certificate names the
// service; the report must name an instance of it, and the limits and
// their rates are the ones of the configuration this server holds for
// that instance: a sidecar cannot ask for a limit, or a rate, it was not
// given. A limit the report does not name counts as idle.
func (s *Server) Budgets(ctx context.Context, r *meshapi.BudgetReport) (*meshapi.BudgetGrants, error) {
	id, err := s.peerIdentity(ctx)
	if err != nil {
		return nil, err
	}
	instance := r.GetInstanceId()
	if err := s.reportFor(instance, id.Service, id.Namespace); err != nil {
		return nil, err
	}
	if err := checkBudgetReport(r); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	v, ok := s.current(instance)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "instance %q has no configuration yet; report once it has", instance)
	}
	usage := make(map[string]*meshapi.BudgetUsage, len(r.GetUsage()))
	for _, u := range r.GetUsage() {
		usage[u.GetLimit()] = u
	}
	pool := s.o.Budgets
	window := time.Duration(r.GetWindowMs()) * time.Millisecond
	now := time.Now()
	out := &meshapi.BudgetGrants{ReportEveryMs: uint32(pool.ReportEvery().Milliseconds())}
	for _, rl := range v.cfg.GetInbound().GetRateLimits() {
		if !rl.GetGlobal() {
			continue
		}
		n := rl.GetRequestsPerSecond()
		k := budget.Key{Namespace: nsOr(id.Namespace), Service: id.Service, Limit: rl.GetName()}
		share, members := pool.Grant(k, instance, n, usage[rl.GetName()].GetRequests(), window, now)
		out.Grants = append(out.Grants, &meshapi.BudgetGrant{
			Limit:             rl.GetName(),
			RequestsPerSecond: share,
			Burst:             budget.BurstShare(rl.GetBurst(), n, share),
			Instances:         uint32(members),
		})
	}
	return out, nil
}

func checkBudgetReport(r *meshapi.BudgetReport) error {
	if n := len(r.GetUsage()); n > MaxBudgetUsages {
		return fmt.Errorf("the budget report names %d limits, more than %d", n, MaxBudgetUsages)
	}
	if w := time.Duration(r.GetWindowMs()) * time.Millisecond; w > MaxBudgetWindow {
		return fmt.Errorf("the budget report covers %s, more than %s", w, MaxBudgetWindow)
	}
	for _, u := range r.GetUsage() {
		if len(u.GetLimit()) > MaxReportName {
			return fmt.Errorf("a limit name of %d bytes is longer than %d", len(u.GetLimit()), MaxReportName)
		}
		if u.GetAdmitted() > u.GetRequests() {
			return fmt.Errorf("limit %q admitted %d requests of %d", u.GetLimit(), u.GetAdmitted(), u.GetRequests())
		}
	}
	return nil
}
