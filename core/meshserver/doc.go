// Package meshserver is the controller's sidecar-facing gRPC API
// (core/meshapi): it admits sidecars (Join, with a single-use join token),
// renews their certificates (Renew, over mTLS), and streams each instance's
// proxy configuration (StreamConfig).
//
// Entry point: New, then Server.Update with every newly compiled set of
// configurations. Update stamps a new version on each configuration that
// changed and wakes only the streams of those instances.
//
// Streams: a new subscriber gets its instance's current configuration first,
// then every new version. Each stream holds one pending slot: if the sidecar
// is slow, intermediate versions are coalesced and it receives the latest, so
// a stuck sidecar costs the controller one configuration, not a queue.
// Sidecars acknowledge or reject every version; the last answer is kept for
// Status. Versions come from a counter seeded with the controller's start
// time, so they keep increasing across controller restarts.
//
// Identity: StreamConfig and Renew take the caller's identity from its
// verified client certificate; a sidecar only ever receives the
// configuration of an instance of its own service.
package meshserver
