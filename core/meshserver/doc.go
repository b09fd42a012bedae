// Package meshserver is the controller's sidecar-facing gRPC API
// (core/meshapi): it admits sidecars (Join, with a single-use join token),
// renews their certificates (Renew, over mTLS), and streams each instance's
// proxy configuration (StreamConfig).
//
// Entry point: New, with Options.Workloads (the trust domain in force and
// the instances adapters report; core/controller.Controller implements it
// and hands itself over, so nothing is set after New), then Server.Update
// with a whole set of configurations, or Server.Apply with what changed
// (the delta of core/compile.Compiler; core/controller's ConfigServer
// listener calls Update for the first build it gets and Apply after). Both
// stamp a new version on each configuration that changed and wake only the
// streams of those instances; Apply touches nothing else.
//
// Encode once: each configuration that arrives is encoded once
// (deterministic protobuf), outside the server's lock; the SHA-256 of
// those bytes is what tells a changed configuration from an unchanged one,
// and for a changed one the same bytes, framed as a ConfigUpdate with its
// version, are what every stream of that instance sends. A stream sends
// them as the unknown fields of an empty ConfigUpdate, which gRPC's proto
// codec writes out by copying them, and which the sidecar decodes as the
// ConfigUpdate they are; nothing is marshalled per stream. The trust bundle
// is part of the configuration: Update and Apply set it on every
// configuration they get before encoding it, and RootsChanged encodes
// every configuration again with the new bundle.
//
// Streams: a new subscriber gets its instance's current configuration first,
// then every new version. Each stream holds one pending slot: if the sidecar
// is slow, intermediate versions are coalesced and it receives the latest, so
// a stuck sidecar costs the controller one configuration, not a queue.
// Sidecars acknowledge or reject every version; the last answer is kept for
// Status. Versions come from a counter seeded with the controller's start
// time, so they keep increasing across controller restarts.
//
// Versions across controller replicas (issue 17), the rule sidecars rely
// on when they move between replicas: a version is a uint64 that only
// grows for a sidecar, whichever replica it talks to. Each replica counts
// from its start time in Unix milliseconds, plus one per publish; on
// top of that, a sidecar names the version it applied last in the first
// ConfigRequest of a stream (applied_version), and the replica then (1)
// moves its counter past that version, so everything it publishes from
// then on is above it, and (2) if the instance's configuration it holds
// is not above it, stamps it again with a new version (same content) and
// sends that. So a sidecar never receives a version lower than or equal
// to one it applied, from any replica; it may receive the same content
// again under a higher version (applying it again changes nothing).
// Versions of two replicas are comparable only as "newer for this
// sidecar"; they do not say which replica compiled what.
//
// Health reports: a sidecar that checks its own app (core/proxy/health)
// sends the result on its config stream (ConfigRequest.health, alone or
// with an ACK; latest wins). The stream hands it to Options.Health (the
// controller, which takes a failing instance out of every caller's
// endpoints) for the instance the stream is bound to, whatever instance
// a later request names, and only once the registry holds that instance
// with the stream's identity's service: a report for an instance not known
// yet waits for the stream's next wake, one for another service's
// instance ends the stream with PermissionDenied. The reason is cut to
// MaxReasonBytes of valid UTF-8 without control characters. A stream hands
// over at most one report per HealthReportGap (200 ms); faster ones are
// coalesced and the latest follows when the gap has passed, so a flapping
// or hostile sidecar cannot make the controller recompile its callers
// faster than that. When the last
// stream of an instance that reported ends, Health.StreamGone says so.
// Identities name services, not instances: an instance's sidecar can
// report for another instance of its own service, never for another
// service's.
//
// Golden signals (report.go): the Report RPC takes a sidecar's stream
// of StatsReports for the instance its first report names, once the
// registry holds that instance as one of the service its certificate
// names (a sidecar that reports for another service's instance is
// refused with PermissionDenied, an unknown instance with
// FailedPrecondition); every report is held to limits (MaxReportCells,
// MaxReportDenials, name lengths, the histogram's bounds) before it
// goes to Options.Stats (core/telemetry), and the Stats interface
// counts the refused ones.
//
// Tap (tap.go): a sidecar keeps a Tap stream open beside its config
// stream; StartTap (the admin API's GET /v1/tap) starts a TapSession,
// whose TapRequest goes to the sidecars of the tapped service, and, for a
// tap limited to one caller (From), to that caller's sidecars for their
// outbound side; sidecars that open their stream while the session lasts
// join it. Their events are merged into the session's channel, labelled
// with each stream's verified identity and instance; an event for a
// session that never asked that sidecar is dropped. Bounds:
// MaxTapSessions at once (ErrTooManyTaps), MaxTapDuration each, a channel
// of TapSessionBuffer per session that drops (and counts) what a slow
// client does not read, a bounded queue of requests per sidecar stream.
// EndTaps ends them all (the controller shutting down).
//
// What sidecars say of themselves: every ConfigRequest may carry the
// sidecar's weft-proxy version, its clock and its certificate's expiry;
// Status reports them (ProxyVersion, ClockSkewMs: its clock minus ours on
// arrival, CertExpires) for `weft check`.
//
// Identity: StreamConfig and Renew take the caller's identity from its
// verified client certificate; a sidecar only ever receives the
// configuration of an instance of its own service. Join and Renew read the
// instance from Options.Workloads, never from a registry; they also ask
// Options.Binder (the controller, from the policy in force) whether the
// instance's scheduler workload may serve its service: a workload no
// binding names is refused with PermissionDenied, naming the workload, the
// service and the binding block to add, so a policy change that unbinds a
// workload stops its renewals; with identity_binding = "permissive" it is
// let through with a warning in the log.
//
// Trust and root rotation: every configuration carries the CA's trust
// bundle and the ID of its active root (ProxyConfig.trust). RotateRoot
// rotates the CA (core/ca) and sends every sidecar a new version with the
// new bundle: the sidecar trusts it first, then renews from the new root
// because its leaf is from another one, without waiting for half-life.
// New leaves carry the new root cross-signed by the old one, so a peer
// that has not got the new bundle yet still verifies them. RetireRoots
// drops an old root from the bundle (and sends the smaller one) when its
// last leaf has expired, and every Options.RootsReload (10s) reads the CA
// directory again (ca.CA.Reload), so that replicas sharing it follow a
// rotation made through any one of them. The controller's own certificate
// (ServingTLSConfig) is issued again at half-life and after a rotation,
// and keeps every cross-signature it carried even after the old root
// retired, so a sidecar started with a bootstrap bundle from before the
// rotation can still verify the controller and join. Client certificates
// are checked against the roots in force at each handshake. Status reports, per sidecar, the root of the last
// certificate issued to it.
//
// Node proxies (node.go, docs/deployment-models.md): one started by its
// adapter joins each of its instances with a node token (joinForNode); one
// a scheduler runs itself (a Nomad system job) joins with its own
// scheduler credential, which its adapter vouches for as a node proxy's on
// a node (CredentialClaims.Node; joinNodeWithCredential), and asks
// NodeInstances which instances to serve: those the adapter's snapshot
// places on that node with Meta[model.MetaProxyMode] = "node" (listed
// through NodeLister, which the controller implements).
package meshserver
