// Package budget divides global rate limits among the sidecars of a
// service: the controller's side of `rate_limit { scope = "global" }`.
//
// Entry points: Allocate (the pure division) and Pool (the members of each
// limit and their recent demand; core/meshserver's Budgets RPC calls
// Pool.Grant with every sidecar's report and answers with its share).
//
// The design. A global limit of N requests a second is one budget for the
// whole service. Each sidecar enforces a token bucket of its own share
// (core/proxy/ratelimit), so a request is decided locally, with no call on
// the request path. About once a second (Options.ReportEvery) each sidecar
// reports, per global limit, how many requests the limit took (admitted or
// refused: its demand, which a share too small cannot hide), and gets its
// share back in the answer. Allocate gives every member a floor (a small
// part of an even split, so that an idle instance admits at once when load
// arrives), then divides the rest in proportion to demand: under
// contention every instance admits the same fraction of its requests, as
// one bucket in front of the whole service would; with demand below N, every
// instance gets its demand and the spare is split evenly, so each can grow
// at once. The shares always sum to N (and the bursts to about the
// limit's burst), so in a steady state the service admits N a second.
//
// Members are the sidecars that reported within Options.Expiry (three
// report intervals): a new instance counts from its first report, a gone
// one stops counting after Expiry (until then its share is unused:
// under-admission, never over-admission).
//
// Accuracy (docs/global-rate-limits.md has the measurements): shares in
// force can sum to more than N only while demand shifts, between one
// sidecar's new grant and another's, at most one report interval; a
// sidecar that never got a grant enforces the whole limit until its first
// answer (normally one round trip after it applies its configuration); a
// sidecar whose grant is older than three report intervals (the
// controller is away) falls back to N divided by the member count of its
// last grant, so the service stays at or below N without the controller.
//
// Several controller replicas (issue 17). A Pool sees only the sidecars
// that report to its replica. Two ways keep the limit with replicas, and
// the Pool is shaped for either: (1) the leader assigns: a follower
// forwards each Budgets call to the raft leader (or the sidecar sends its
// Budgets calls there), so one Pool holds every member; when the leader is
// lost, sidecars fall back to fair shares until another is elected, which
// keeps the limit; (2) each replica divides N among its own sidecars after
// the replicas split N among themselves in proportion to the demand each
// sees, exchanged every interval outside the raft log (demand changes
// every second; it must not be replicated as log entries). Option (1) is
// the smaller change and the one to build first: the Pool is unchanged,
// and Grant's answer is still a pure function of what the leader heard.
package budget
