// Package protect holds the defences every listener Weft opens shares:
// the sidecar's inbound mTLS port and its outbound localhost listeners
// (core/proxy), its admin port (cmd/weft-proxy), the controller's sidecar
// gRPC API and admin API (cmd/weft), and the ingress gateway. One place
// decides how long a client may take to send its headers, how big and how
// many they may be, how large a body, how many HTTP/2 streams and how many
// connections one source IP address may hold, and when a saturated
// listener sheds load (503 with Retry-After at once, never a queue).
//
// Entry point: NewShield, one per listener, with Settings (Defaults, or
// FromProto over them for what policy says: `mesh { protection {} }` and
// a service's own protection block, compiled to meshapi.Protection):
//
//	sh := protect.NewShield(protect.Defaults(), protect.Options{Listener: "admin", Refused: count})
//	srv := &http.Server{Handler: sh.Handler(mux)}
//	sh.Server(srv)                       // timeouts, header bytes, h2 streams
//	go srv.Serve(sh.Listener(ln))        // connections per source IP
//
// A listener that runs its own accept loop (the sidecar's) calls Admit
// for each connection instead of Listener. Set swaps the settings a
// running Shield applies per connection and per request; what an
// http.Server fixes when it starts (ServerKey) needs a new server.
//
// Every refusal goes to Options.Refused with a reason of bounded
// cardinality (Reasons) and the client's address, so a caller can count it
// and feed it to an intrusion tracker (core/proxy/guard). Defaults and the
// reasons behind them: docs/protection.md.
package protect
