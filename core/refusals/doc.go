// Package refusals logs refused TLS handshakes at a bounded rate and counts
// them by reason, for every listener that authenticates its peers: the
// sidecar's inbound mesh port (core/proxy) and the controller's sidecar
// and admin APIs (cmd/weft).
//
// Entry point: New, one Log per listener; Log.Refused for each failed
// handshake. A flood of bad handshakes (a scanner, a peer with a stale
// certificate in a retry loop) must not flood the log: the first refusal
// is written at once, the ones that follow within Options.Every (1s) are
// counted and summed up in one line when it ends:
//
//	inbound: refused connection from 127.0.0.1:40000: TLS handshake: tls: first record does not look like a TLS handshake
//	inbound: 499 more refused handshakes in the last 1s, last from 127.0.0.1:40312: tls: first record does not look like a TLS handshake
//
// and so on for each period with refusals, so a steady flood writes one
// line a second and a single refusal is never delayed. A connection
// closed before it sent a byte (a TCP health check, a port scan) is
// counted but not written. Every refusal is counted, by a reason of
// bounded cardinality (Reason: not_tls, no_client_certificate,
// bad_certificate, peer_rejected, timeout, closed, reset, protocol,
// other), for metrics: Counts, and Options.Counted for a Prometheus
// counter.
package refusals
