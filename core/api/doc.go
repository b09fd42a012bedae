// Package api is the controller's admin API, the HTTPS API that `weft
// status`, `weft ca`, `weft check` and `weft policy plan` use (and the
// end-to-end tests, through test/harness, with the same code and types):
// its JSON types, its handler and server, its token, and its client.
//
// Types (types.go): StatusReport (GET /v1/status), RootsReport (GET
// /v1/ca/roots), PolicySources (GET /v1/policy), JoinTokenRequest and
// JoinTokenResponse (POST /v1/join-tokens); POST /v1/ca/rotate answers a
// ca.Rotation. Their JSON field names are the API: the CLI's --json output
// and the tests decode them. StatusReport.Dropped lists the instances left
// out for a reason (Mesh.Dropped) and DroppedCounts counts them per reason;
// AdapterReport.LastError is, while the adapter cannot read its scheduler,
// what it says about that (SourceFailing), else the plugin's last failure,
// with LastErrorAt.
// StatsReport (stats.go, GET /v1/stats?window=1m; `weft stat`, the
// dashboard) holds the golden signals the sidecars reported, from
// Options.Stats (StatsSource, core/telemetry.Collector); GET /metrics
// serves Options.Metrics, the controller's own Prometheus registry
// (core/telemetry). Both are behind the token like every route
// (stats_handler.go); Client.Stats asks for the first.
// An instance's health in status is the one the controller compiles with,
// with its source: "scheduler", or "sidecar_check" when the scheduler
// does not say critical but the instance's sidecar reports its app
// failing its active checks (health_reason says why; Mesh.SidecarHealth).
//
// Tap (tap.go): GET /v1/tap streams live requests of one service as
// newline-delimited JSON TapEvents (joined, request, end), from the tap hub
// of core/meshserver (Options.Tap, the Tapper interface); TapQueryOf reads
// and bounds its parameters; Client.Tap and Client.Stream read it without
// Call's overall timeout. `weft tap` and `weft top` use it. On a raft
// replica the Tapper is core/relay's Taps (the tap reaches every replica's
// sidecars), which also answers GET /v1/tap/sessions (TapSessions: what is
// open here, the legs run for peers' taps included).
//
// Authz (authz.go): GET /v1/authz answers an AuthzReport: whether a caller
// may call a service (and a method and path), decided with the callee
// sidecar's own code (core/proxy/authz on core/compile.Authz of the policy
// in force, after core/proxy/canon), and the intention that decides with
// its file:line (policy.Declared). `weft authz` uses it.
//
// StatusReport carries the controller's version and clock, and each
// sidecar's reported weft-proxy version, clock skew and certificate
// expiry (meshserver.StreamStatus), which `weft check` judges.
//
// Server side (handler.go, token.go): NewHandler builds the handler from
// Options, narrow interfaces over what it reads: Mesh (the controller
// loop, core/controller.Controller), Sidecars (the config server,
// core/meshserver.Server), Authority (the CA, *ca.CA), PolicyFiles (the
// policy watcher, core/controller.PolicyWatcher), and functions for what
// lives outside core (the adapters' states, the policy summary, both from
// cmd/weft). Every request needs "Authorization: Bearer TOKEN" (Authorized,
// constant time; an empty token admits nobody), but for the web
// dashboard's static files at /ui/ (core/dashboard, mounted in
// dashboard.go), which hold no data: the page reads the API with the
// token like any client. The token is
// DATA_DIR/admin.token, made by LoadOrCreateToken. NewServer serves the
// handler over HTTPS only, with the controller's own certificate. cmd/weft
// only wires these; it has no handler of its own.
//
// Client side (client.go). Entry point: New, from a Config: the address (https://HOST:PORT, or
// HOST:PORT which means the same), the bearer token and the CA bundle that
// verifies the controller. Client.Call sends one request and decodes the
// JSON answer.
//
// Trust: the controller serves the admin API with its own certificate, the
// one its sidecar API presents: signed by the mesh CA and issued again by
// the controller at half-life and after a root rotation (core/meshserver
// ServingTLSConfig). So the client trusts the mesh's CA bundle and nothing
// else, never the system roots: the controller keeps it in
// DATA_DIR/ca/ca.crt, and `weft ca roots --pem` prints every root.
//
// What is refused before anything is sent: a plain http:// address (the
// token would cross the network in clear), an address with a path, query,
// user or no port, a CA bundle that is missing, too large or holds no
// certificate. Redirects are never followed. What goes wrong on the way
// comes back as a sentence that says what to do: a controller whose
// certificate the bundle does not verify (set WEFT_CACERT or --ca-cert),
// one whose certificate does not name the address dialed (its
// --server-name), one that still speaks plain HTTP (an older controller),
// one that is not there. A refused token is a *StatusError with code 401.
//
// InstanceReport.Labels are the scheduler's own labels of the instance
// (model.Instance.Labels), which the dashboard shows.
//
// Environment: like Nomad's NOMAD_ADDR, NOMAD_TOKEN and NOMAD_CACERT, the
// CLI reads WEFT_ADDR, WEFT_TOKEN and WEFT_CACERT (EnvAddr, EnvToken,
// EnvCACert) when the matching flag is not given; flags win. This package
// names them; cmd/weft resolves them.
package api
