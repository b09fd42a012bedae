// Package sockwait lets a connection wait for its next bytes holding no
// buffer: Under finds the socket beneath a connection's wrappers (the
// listeners' accounting, core/protect's, crypto/tls), and Readable parks
// until that socket has bytes to read (or its peer closed it, or it
// failed), with the connection's read deadline, and reads nothing. The
// byte-level HTTP/1.1 engine (core/proxy/h1) waits for an idle
// connection's next request with it, and core/proxy's TCP pass-through
// waits for each burst with it before taking a copy buffer.
//
// Where a socket cannot be peeked at (Supported false), Readable returns
// at once and the caller's read waits.
//
// Entry points: Under, Readable.
package sockwait
