// Package h1pool is the sidecar's HTTP/1.1 client for both HTTP/1.1 hops
// (to the upstream sidecar over mTLS, to the local application). The
// handler's goroutine writes the request and reads the response itself on
// a pooled keep-alive connection, where net/http.Transport spends two
// goroutines per connection and several hand-offs per request.
//
// It takes requests with no body or a body of known length up to
// FastBodyMax; streaming bodies and upgrades go to a fallback
// http.RoundTripper, with a body that, once it returned io.EOF, is not read
// again: net/http.Transport reads a body once more after its declared
// length, and a net/http server closes the body of a request it serves
// once the handler's response headers go out, so that late read would fail
// and the transport would close the connection under the response. A
// connection idle for over 500 ms, or any before a
// request that may not be sent again (below), is checked for a close by
// its peer before use. A request that meets a connection closed
// under it (before any byte of the response) is sent again on a new one
// only when repeating it is safe, as net/http decides; when the connection
// took no byte of it (the peer had reset it), the error says so
// (ErrNotSent) and the caller, which kept the body, may send it anywhere.
// Open connections are
// capped through the ConnLimit interface (in the sidecar, the upstream's
// circuit breaker), past which a request waits in its queue or fails with
// ErrConnOverflow.
//
// Pool.Lease lends a pooled connection, under the same cap, to a caller
// that speaks HTTP/1.1 on it with buffers of its own (the byte-level
// outbound of core/proxy/outbound_bytes.go); Pool.Return takes it back.
//
// Entry points: New, Pool.RoundTrip, Pool.Lease, Pool.CloseIdle, Pool.Close.
package h1pool
