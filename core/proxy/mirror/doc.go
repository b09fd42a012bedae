// Package mirror sends a copy of a route's request, with its body, to the
// route's mirror service once the request is done: fire and forget, over
// mTLS to a sidecar of the mirror (round robin), at most MaxInFlight copies
// in flight per upstream listener (more are dropped), each bounded by a
// timeout. The copy's Host is the original's with "-shadow" appended.
//
// Entry points: Compile (a route's Target), NewSender, Sender.Send.
package mirror
