// Package h1 is the sidecar's byte-level HTTP/1.1 engine: it reads a
// request head into a pooled buffer, parses it in
// place (ParseRequest: the request line and the header fields as slices
// of that buffer, with core/protect's header limits and core/proxy/canon's
// canonical path and refusals applied on that view), writes the head with
// this hop's header changes and streams the body (Content-Length,
// chunked with trailers, none) to an upstream connection with one
// buffered write per message, then streams the response back the same
// way (ParseResponse: 1xx and 100-continue, HEAD, 204 and 304, close and
// keep-alive, upgrades handed off as a raw byte pipe), request after
// request, pipelined or not. In steady state it allocates nothing per
// request (BenchmarkForward).
//
// An idle connection holds no buffer and no header fields' room: they
// come from pools when a request's first bytes do and go back when the
// connection waits again. A plain connection waits on its socket
// (core/proxy/sockwait), a TLS one in a read into a 512-byte buffer.
// GoServeConnHook serves each connection on a goroutine of its own whose
// stack holds little under the wait, so that it shrinks to 4 KiB: an idle
// keep-alive connection costs that stack, the session and the caller's
// per-connection state (BenchmarkIdleConnMemory in core/proxy).
//
// A Hook (ServeConnHook) decides on each parsed request before a byte of
// it goes upstream: forward it with fields added and removed, answer it
// itself, or hand the connection, with the bytes read and not used, to
// another engine; it hears how each exchange ended (status, body bytes)
// before the response's last bytes go out. UpstreamFailer and Idler are
// its optional parts. An Upstreams hook picks the upstream connection of
// every try of every request itself (a pool of connections to many
// peers) and decides on retries; the engine then reads each request whole
// (bodies up to ReplayMax) so that every try sends the same bytes.
// core/proxy's inbound listener uses it behind WEFT_HTTP1_ENGINE=bytes
// (core/proxy/inbound_bytes.go), and its outbound listener with an
// Upstreams hook over core/proxy/h1pool (core/proxy/outbound_bytes.go).
//
// Entry points: Forwarder.ServeConn, Forwarder.ServeConnHook (and
// GoServeConnHook), ParseRequest, ParseResponse.
package h1
