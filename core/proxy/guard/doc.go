// Package guard is the intrusion tracker of a sidecar (and of the
// gateway): it counts the signals each source gives (refused TLS
// handshakes, denied requests and connections, rate-limit and
// connection-limit hits, malformed or oversized requests, JWT failures),
// keeps the sources with signals in a bounded table, and blocks, for a
// while, a source that crosses a threshold within a window.
//
// Entry point: New, one Tracker per proxy; Note(source, kind) for every
// signal, Blocked(source) where a connection is taken (cheap when nothing
// is blocked: one atomic load):
//
//	t := guard.New(guard.Options{})              // tracks, blocks nothing
//	t.Set(guard.Policy{Threshold: 50, Window: 10 * time.Second, BlockFor: time.Minute, Addresses: true})
//	t.Note("203.0.113.7", guard.Handshake)        // an IP address
//	t.Note("spiffe://weft.local/ns/default/svc/web", guard.Denied) // a mesh identity
//	if t.Blocked(ip) { conn.Close() }
//	t.Top(20); t.BlockedSources()                 // for reports, status and metrics
//
// A source is an IP address (as protect.SourceIP gives it) or a SPIFFE
// ID ("spiffe://..."). Blocking is off by default for both: a mesh
// identity is authenticated and a block of it cuts a service off, and a
// sidecar's peers share addresses behind NATs and node proxies. The
// policy turns it on (`mesh { protection { blocking { addresses = true }}}`);
// a gateway facing the outside may turn addresses on itself.
//
// Bounds: at most Options.Capacity sources are tracked (the least
// recently noted go first) and at most Capacity are blocked (the block
// ending soonest goes first), so a flood from many addresses costs a
// fixed amount of memory; kinds are a fixed set.
package guard
