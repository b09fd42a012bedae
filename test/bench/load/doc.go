// Package load is the benchmark suite's own load generator and test
// server. It is open-loop: requests leave on a fixed schedule (Schedule)
// whatever the replies do, and latency is measured from each request's
// due time, so a stall is charged to every request it delays (no
// coordinated omission; see wrk2's notes on the subject). Latencies go to
// an HDR-style log-linear Histogram, one per connection, merged at the end.
//
// Entry points: Run (a Config in, a Result out) and Serve (the backend the
// suite puts behind every candidate: 1 KiB HTTP responses over HTTP/1.1
// and h2c, the gRPC health service, and TCP echo). Protocols: "http1"
// (keep-alive, one request in flight per connection), "h2" (h2c prior
// knowledge), "grpc" (unary health Check), "tcp" (small echo messages),
// and "tcp-new" (a new connection per request: measures connection setup,
// which through a mesh is the mTLS handshake between the proxies).
//
// With Rate 0 the generator is closed-loop (each connection sends as soon
// as its previous reply is in): that is the maximum-throughput mode, and
// latency is then measured from the actual send.
//
// cmd/weft-load is the command around it; test/bench/runner drives it.
package load
