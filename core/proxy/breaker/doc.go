// Package breaker is an upstream's circuit breaker in one sidecar: caps on
// requests in flight (max_requests), with a bounded queue of requests
// waiting for a slot (max_pending), on concurrent retries (max_retries)
// and on TCP connections (max_connections). HTTP/1.1 upstreams cap their
// pooled connections through Conns, an h1pool.ConnLimit. A Breaker survives
// configuration versions that leave its caps alone, so counts carry on.
//
// Entry points: New, Breaker.Acquire, Breaker.StartRetry,
// Breaker.StartConn, Conns.
package breaker
