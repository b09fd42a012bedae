// Package ratelimit is the inbound sidecar's rate limits: token buckets
// per limit, or per calling service, over the requests a limit's match
// takes (package canon) from the callers it names. A limit whose
// configuration did not change keeps its buckets across versions.
//
// A global limit (meshapi.RateLimit.global) has one bucket whose rate and
// size are the share of the limit the controller grants this sidecar
// (core/budget decides it; core/proxy's RunBudgets reports Usage and calls
// SetShare); it counts the requests it takes for those reports.
//
// Entry points: Compile, Limiter.Allow, RetryAfter; for global limits
// Limiter.SetShare and Limiter.Usage.
package ratelimit
