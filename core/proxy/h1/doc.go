// Package h1 is the sidecar's byte-level HTTP/1.1 engine: it reads a
// request head into a buffer it keeps for the connection, parses it in
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
// It is not wired into the sidecar yet: core/proxy's inbound and outbound
// still serve HTTP/1.1 with net/http (issue 18 says what remains).
//
// Entry points: Forwarder.ServeConn, ParseRequest, ParseResponse.
package h1
