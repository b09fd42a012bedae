// Package h2cork coalesces the writes of an HTTP/2 connection so that a
// gRPC call's frames leave in one system call instead of one per frame.
//
// net/http's HTTP/2 server writes a response's HEADERS, DATA and trailers
// as three flushes (the handler waits for each frame to be written before
// it hands over the next), and its client writes a request's HEADERS, DATA
// and the END_STREAM frame as three more. On a unary gRPC call each flush
// is a write(2) for the sidecar and a wake-up and read(2) for the peer,
// which can do nothing with the call until its last frame anyway.
//
// A Conn sits under the HTTP/2 framer and above TLS, if any (it sees
// frames in clear: over mTLS it wraps the *tls.Conn), and reads
// the 9-byte header of every frame written through it. Bytes that end in
// a HEADERS or DATA frame without END_STREAM are held; the write that
// carries a frame with END_STREAM, RST_STREAM or any connection-level frame
// (SETTINGS, PING, GOAWAY, WINDOW_UPDATE, PRIORITY) sends what was held
// and itself in one write. A hold lasts at most MaxHold: when it runs out
// the bytes go and the streams they belonged to are marked streaming, so
// that a server-streaming or bidirectional call pays the wait once, on its
// first frames, and its later messages pass through as they come. A hold
// never grows past one maximum-size frame (HoldLimit): bulk bodies pass.
// A connection whose first bytes are not HTTP/2 (an HTTP/1.1 server's
// answer) passes through untouched.
//
// Entry point: New (Server for a connection an HTTP/2 server writes,
// Client for one an HTTP/2 client with prior knowledge writes).
package h2cork
