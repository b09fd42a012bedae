// Package ratelimit is the inbound sidecar's rate limits: token buckets
// per limit, or per calling service, over the requests a limit's match
// takes (package canon) from the callers it names. A limit whose
// configuration did not change keeps its buckets across versions.
//
// Entry points: Compile, Limiter.Allow, RetryAfter.
package ratelimit
