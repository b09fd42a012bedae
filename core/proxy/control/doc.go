// Package control is the sidecar's controller client: it joins the mesh
// with a single-use join token or a scheduler credential (Join over TLS
// verified with the trust bundle), subscribes to StreamConfig over mTLS,
// hands every configuration version to a Watcher and acknowledges it
// (applied_version) or rejects it (rejected_version and error_detail, the
// watcher keeping its last good one), renews the certificate at half its
// lifetime (or at once when a configuration names another active root),
// and reconnects across the controller replicas when a stream breaks. With
// a data directory (datadir.go) the certificate and the last configuration
// survive a restart.
//
// Replicas (replicas.go): the sidecar is given every controller replica
// (Options.Controllers; a DNS name stands for every address it resolves
// to, looked up again each round) and talks to one at a time, in an order
// of its own drawn at random, so that a mesh's sidecars spread over the
// replicas. When its replica dies it tries the next one after a wait
// drawn from [0, FailoverSpread) (1s by default: the sidecars of a dead
// replica reach the others spread over a second, not in one instant), and
// backs off (core/backoff, 200ms doubling to 10s, with jitter) only once
// every replica failed since the last success. Join, Renew and the
// reports follow the same choice. The connection of a config stream that
// failed is closed, so a later attempt dials afresh.
//
// Versions: a configuration version lower than the one the sidecar
// applied last is refused whole (NACK with the reason, the last good
// configuration and trust bundle kept), whichever replica sends it: a
// replica that is behind never moves a sidecar back. The same version
// again is applied (a replica that agrees). Versions must therefore be
// comparable across replicas (the controller's business, issue 17).
//
// Health: Client.ReportHealth hands the controller the sidecar's latest
// view of its app's health (the result of its active checks). It never
// blocks: the report is kept in a latest-wins slot, sent at once on the
// live config stream (a ConfigRequest carrying only the report) and again
// with the subscription after every (re)connect, so a controller that
// restarted, or another replica, learns it without waiting for the next
// change. The controller takes an instance whose sidecar reports failing
// out of every caller's endpoints. A sidecar that never calls it reports
// nothing, and the scheduler's health alone counts.
//
// Every ConfigRequest it sends (the subscription, each ACK or NACK)
// carries the sidecar's version (core/version), its clock and its
// certificate's expiry, which `weft check` judges (report.go; the only
// way to fake them is a test build's -ldflags, never a flag).
// Options.Beside runs beside each config stream on the same mTLS
// connection: core/proxy's tap stream.
//
// It knows nothing of listeners: what applies a configuration is the
// Watcher (Apply, SetCredentials), a core/proxy.Proxy in the sidecar. A
// proxy serving many instances runs one Client per instance, each with its
// own watcher.
//
// Entry points:
//
//	c, err := control.New(watcher, control.Options{InstanceID: ..., Controllers: ..., TrustBundle: ...})
//	err = c.Run(ctx) // until ctx ends; an error only when the sidecar cannot join at all
//
// core/proxy.NewClient composes it with a Proxy (and the proxy's logger).
package control
