// Package proxy is the sidecar data plane: the library behind weft-proxy.
// It is the last step of the data flow. The controller compiles one
// meshapi.ProxyConfig per instance and streams it; this package applies
// it atomically and carries the instance's traffic between sidecars over
// mTLS.
//
// # Entry points
//
//	p := proxy.New(proxy.Options{Logger: logger}) // no listeners yet
//	p.SetCredentials(creds)               // certificate, key, mesh roots
//	err := p.Apply(version, cfg)          // reconcile listeners; error = NACK
//	http.Handle("/", p.AdminHandler())    // /ready, /metrics, /config, /stats, /health
//	c, err := proxy.NewClient(p, opts)    // the controller client driving p
//	err = c.Run(ctx)                      // join, stream, renew until ctx ends
//	p.Close()                             // idempotent, bounded drain
//
// In production a controller client (package control, composed with the
// Proxy by NewClient) drives the Proxy through the control.Watcher
// interface (Apply, SetCredentials): it joins the mesh with the
// single-use join token (Join over TLS verified with the trust bundle),
// subscribes to StreamConfig over mTLS, applies every version and
// acknowledges it (applied_version) or rejects it (rejected_version and
// error_detail, keeping the last good config), renews the certificate at
// half its lifetime, and reconnects with jittered exponential backoff
// across the controller addresses when a stream breaks. The Proxy keeps
// serving with its last config and certificate meanwhile. With a data
// directory (control/datadir.go) the certificate and the last config
// survive a restart. Tests drive the Proxy directly, with certificates
// from proxytest.
//
// Packages under core/proxy:
//
//   - core/proxy: the Proxy (listeners and Apply in proxy.go and
//     listeners.go; inbound.go with normalize_inputs.go;
//     outbound.go with route.go; tls.go; admin, metrics, access log) and
//     NewClient, the composition of a Proxy with its controller client.
//     It wires the parts below through small seams: control.Watcher (the
//     Proxy), h1pool.ConnLimit (breaker.Conns), balance.Balancer,
//     mirror.Options; inbound and outbound are handlers behind the
//     listener's handler/updater interfaces (listeners.go, proxy.go). A
//     proxy serving many instances composes one Proxy (or one set of
//     listeners) and one control.Client per instance.
//   - control: the controller client (join, stream, ACK/NACK, renewal,
//     data directory), delivering to a control.Watcher.
//   - creds: the credentials (certificate, key, identity, roots).
//   - h1pool: the HTTP/1.1 client connection pool, limited through its
//     ConnLimit interface.
//   - balance: endpoints, the balancers, consistent-hash keys and outlier
//     detection (ejection decides what a balancer skips).
//   - breaker: the circuit breaker's caps (requests, pending, retries,
//     connections), and Conns, the cap as the HTTP/1.1 pool sees it.
//   - retry: a route's retry policy and budget, the request body kept for
//     a retry or a mirror, and the gRPC status peek.
//   - canon: canonical requests (Canonicalize, or a BadRequest refused
//     with 400) and the request matchers that read them.
//   - authz: the inbound's evaluator of the compiled authorization rules
//     (meshapi.Authz) and their L7 permissions.
//   - ratelimit: the inbound's token buckets (per limit or per caller).
//   - mirror: request copies to a route's mirror service (mirror.Options:
//     the sidecar's mTLS dial, counter and logger).
//   - health: the active check of the instance's own application (HTTP
//     path and status, gRPC Health Checking Protocol, TCP connect;
//     interval, timeout, thresholds), run by the Proxy while its
//     configuration asks for one (apphealth.go).
//   - proxytest: test helpers (a test CA signing with core/ca's leaf
//     template, a fake controller); never linked by weft-proxy.
//
// # Where a connection goes
//
//   - listeners.go: one socket per listener key ("inbound",
//     "upstream/<name>"), an accept loop, and the handler swapped into it.
//
//   - inbound.go: the inbound listener terminates mTLS (client certificate
//     required, checked with spiffe.VerifyPeer against the current roots
//     and the config's trust domain), authorizes the caller's namespace
//     and service, read from its SPIFFE ID, against inbound.authz
//     (package authz evaluates the compiled rules itself, as
//     policy.Decide decides for the intentions they came from,
//     authz_equiv_test.go: a
//     named service beats its namespace's "*", which beats "*", deny wins
//     among equals, else the default action, deny by default; a caller
//     from another trust domain is refused whatever the rules and default
//     say) and forwards to the
//     application: TCP by piping bytes, HTTP
//     protocols by reverse-proxying each request (HTTP/1.1 to the app for
//     PROTOCOL_HTTP, h2c for HTTP2 and GRPC) with X-Weft-Caller and
//     X-Forwarded-Client-Cert set. A denied request gets 403 (gRPC:
//     PERMISSION_DENIED); a denied TCP connection is closed. Every HTTP
//     request is put in canonical form first, or refused with 400 (see
//     "Canonical requests" below). The sidecar owns the identity headers:
//     it drops whatever a client sent under their names (in any case, or
//     with underscores for dashes) and their names from Connection, and
//     sets them again after the reverse proxy's hop-by-hop removal, so
//     "Connection: X-Weft-Caller" cannot strip them and the app always sees
//     the verified caller. With WEFT_HTTP1_ENGINE=bytes (Options.HTTP1Engine)
//     an HTTP/1.1 connection is served by core/proxy/h1 instead, on the
//     bytes it read, with the same decisions (inbound_bytes.go says which
//     features it serves; a request needing another goes, with its
//     connection, to the net/http server).
//
//   - gateway.go: gateway mode (ProxyConfig.gateway): no inbound; one
//     listener per gateway listener (KeyGateway), ending TLS from outside
//     (or passing it through by SNI), picking a route by host and match,
//     authenticate (the check before routing), then the route's outbound
//     (below, without a socket of its own) calls the service over mTLS with
//     the gateway's identity. With WEFT_HTTP1_ENGINE=bytes an HTTP/1.1
//     client is served by core/proxy/h1 (gateway_bytes.go: the gateway's
//     checks, then the route's outConn of outbound_bytes.go); a gateway
//     with end-user tokens to check, and any request the bytes outbound
//     hands off, go with the connection to the listener's net/http server.
//
//   - outbound.go: each upstream listens on a local port for the app
//     (plain TCP; HTTP/1.1 or h2c prior knowledge for HTTP protocols),
//     picks an endpoint per connection or request, and dials it over mTLS,
//     requiring the exact SPIFFE ID of the upstream. PROTOCOL_HTTP
//     requests go between sidecars as HTTP/1.1 on pooled keep-alive mTLS
//     connections (as Envoy keeps HTTP/1.1 upstream), HTTP2 and GRPC over
//     pooled HTTP/2 connections. A failed dial, or a pooled connection the
//     peer had reset that took no byte of the request (h1pool.ErrNotSent),
//     tries another endpoint (up to 3; a request with a body when its body
//     can go again: untouched, or recorded whole). No endpoint: 503 (gRPC:
//     UNAVAILABLE). A callee sidecar's signal that its app cannot take the
//     request (below, "A dead or failing application") sends the request
//     to another endpoint, whatever its method. With WEFT_HTTP1_ENGINE=bytes
//     the app's HTTP/1.1 connections to a PROTOCOL_HTTP upstream are served
//     by core/proxy/h1 through an h1.Upstreams hook (outbound_bytes.go:
//     routes, splits, breaker, timeouts, retries on the pool's connections,
//     bodies up to h1.ReplayMax); what it does not serve goes, with the
//     connection, to the net/http server.
//
//   - balance (package): round robin; least request as the power of two
//     random choices over requests (or connections) in flight; random;
//     ring hash (128 points per endpoint) and maglev (a 65537-slot table)
//     on a header, a cookie or the calling instance, keyed by instance ID
//     so a key stays put across config versions.
//
//   - canon (package): the compiled request matcher (path exact, prefix or
//     anchored RE2 regex; methods; headers and query parameters, any value
//     matching, present, inverted) shared by routes, L7 permissions and
//     rate limits. It reads the canonical request (canon.Canonicalize).
//
//   - route.go, retry (package): an upstream's routes, tried in order on every
//     request; the first that matches picks a split (weighted random) and
//     the pool of its subset's endpoints (endpoints carry their subsets).
//     Its retry policy retries the conditions it names on other endpoints
//     while any is left, within its attempts, its budget (percent of the
//     requests of the last 10 seconds plus a minimum a second) and the
//     circuit breaker's max_retries. A body is kept as it streams, up to
//     64 KiB, and a request is retried only when it went out whole; a
//     gRPC status is read from the headers, or, when the route retries
//     gRPC codes, by peeking at the response (so headers of such a route's
//     streams wait for the first message). The per-try timeout bounds the
//     wait for response headers; the request timeout the whole exchange
//     (504, gRPC DEADLINE_EXCEEDED); the stream timeout a request with no
//     bytes either way. The idle timeout (app connections and pooled mesh
//     connections) is fixed when an upstream's handler starts: a change
//     gets a new handler on the same socket, and the old one drains.
//     Route header changes apply on the caller's side.
//     Fault injection delays, then aborts, at the route's rates.
//
//   - breaker (package): circuit breaking per upstream (requests in flight, a
//     bounded wait queue, retries, connections: a TCP connection past the
//     cap is closed, an HTTP/1.1 request waits in the queue for a pooled
//     connection (h1pool, limited through h1pool.ConnLimit, which
//     breakerConns implements over the breaker in force); past a cap 503 with X-Weft-Overloaded, gRPC
//     UNAVAILABLE; HTTP2 and GRPC connections are not capped, they carry
//     many requests each); outlier detection per upstream, in package
//     balance (a balance.Detector per outbound, closed by its shutdown:
//     consecutive 5xx, gateway errors or local failures, or a success rate
//     below the others' on the interval's sweep, eject an endpoint for
//     base time x ejections, at most max_ejected_percent at once; its own
//     timer returns it when the time ends; when every endpoint is ejected,
//     ejection is ignored). Ejections are logged, counted in
//     weft_outlier_ejections_total{peer,reason} and shown per endpoint in
//     the admin GET /stats.
//
//   - mirror (package): mirroring sends a copy of a route's request, with its
//     body, to the mirror service once the request is done, fire and
//     forget, at most 64 copies in flight (more are dropped).
//
//   - ratelimit (package): inbound token buckets (per limit, or per calling
//     service), checked after authorization: 429 with Retry-After (gRPC
//     RESOURCE_EXHAUSTED); connection limits close connections past the
//     cap before (in all) or after (per caller) the handshake.
//
//   - WebSocket: an upgrade request goes to the upstream sidecar over a
//     separate HTTP/1.1 mTLS connection (HTTP/2 cannot carry Upgrade) and
//     is exempt from request and stream timeouts.
//
//   - creds (package), tls.go: credentials, and the TLS configs that read
//     the current certificate and roots from atomic pointers, so renewals
//     and root rotations need no restart and drop no connection. Every
//     configuration carries the trust bundle and the active root's ID:
//     the control client trusts the bundle before applying the rest, and
//     renews at once when its leaf is from another root (`weft ca rotate`).
//
//   - h2cork (package): coalesces a gRPC call's HTTP/2 frames into one
//     write per direction and leg. It reads the frame headers written
//     through a connection and holds bytes until a frame ends a stream or
//     a connection-level frame comes, at most 500 us (a stream still open
//     then is left alone from then on). GRPC upstreams only, on all four
//     legs: the outbound's h2c listener, the outbound's calls to sidecars
//     (meshGRPC: x/net/http2's Transport, as net/http's needs the
//     *tls.Conn from its dialer), the inbound's mTLS connections
//     (serveGRPC: x/net/http2's server with the net/http server's
//     settings and handler; h2drain sends them GOAWAY at shutdown) and
//     the inbound's h2c transport to the app.
//
//   - h1pool (package): the HTTP/1.1 client of both HTTP/1.1 hops (to the
//     upstream sidecar, to the app). The handler's goroutine writes the
//     request and reads the response itself on a pooled connection, where
//     net/http.Transport spends two goroutines per connection and several
//     hand-offs per request; that roughly doubled the requests a core
//     carries (BENCHMARKS.md). It takes requests with no body or a body of
//     known length up to 64 KiB; streaming bodies and upgrades go to a
//     net/http.Transport. A connection idle for over 500 ms is checked for
//     a close by its peer before use. A request that meets a connection
//     closed under it (before any byte of the response) is sent again on a
//     new one only when repeating it is safe, as net/http decides: no body,
//     and GET, HEAD, OPTIONS or TRACE, or an Idempotency-Key (or
//     X-Idempotency-Key) header. The peer may have read and acted on a
//     POST or DELETE before it closed: those fail (502 to the client)
//     rather than run twice.
//
//   - http.go: what the HTTP paths share (status capture, gRPC errors,
//     the reverse proxies' pooled copy buffers).
//
//   - stats.go, report.go: the golden signals for the controller: a cell
//     per calling service (inbound), per upstream, route and subset
//     (outbound), bound when a configuration is applied (the caller's
//     cell is found by the identity its connection holds; a route and a
//     split carry theirs), counted with atomic adds and no allocation;
//     RunReports sends what changed since the last report the controller
//     took (a report it did not take in an interval is dropped and its
//     counts go in the next one)
//
//   - budgets.go: global rate limits (scope = "global"): RunBudgets
//     reports what each global limit took to the controller about once a
//     second (rpc Budgets), sets the limit's bucket to the share granted
//     (core/budget decides it), and, with no grant for three intervals,
//     to a fair share: the limit over the instances of the last grant
//
//   - tracing (the package) and trace.go: with the config's tracing set,
//     inbound.go starts a server span per request from another sidecar
//     and outbound.go a client span per request from the app, each
//     continuing the W3C or B3 context the request carried and writing
//     its own onto the request it forwards (the app's and the upstream's
//     traceparent); spans go out with OTLP in bounded batches
//     (weft_tracing_spans_total counts exported, dropped, failed). With
//     tracing off: one atomic load per request, no allocation, headers
//     passed through. Apply changes sampling or the collector in place.
//
//   - admin.go, metrics.go: the admin endpoints and the Prometheus series
//     (private registry): weft_requests_total, weft_request_duration_seconds,
//     weft_bytes_total, weft_connections_total, weft_connections_active,
//     weft_authz_denied_total, weft_rate_limited_total,
//     weft_faults_injected_total, weft_circuit_breaker_overflow_total,
//     weft_circuit_breaker_pending, weft_mirrored_requests_total,
//     weft_config_version, weft_inbound_handshakes_refused_total (by
//     reason; the refusals' log lines are rate-limited, core/refusals),
//     weft_app_unavailable_total, weft_app_healthy,
//     weft_unavailable_retries_total, weft_stats_reports_sent_total,
//     weft_stats_reports_dropped_total, weft_instance_info (instance_id,
//     service, namespace and the scheduler labels but those that change
//     on a restart: pid, proxy_pid, restarts, and those Prometheus sets
//     on every series of a target: job, instance), and the process_ and
//     go_ collectors. docs/metrics.md lists them with their labels;
//     promlint checks the names (metrics_names_test.go). Outbound request
//     series carry route and subset labels ("" for none), found through
//     the request's route without building a key per request.
//     Events (listeners, refusals, ejections, failed calls, the
//     controller client's joins, renewals and config versions) go to
//     Options.Logger, a log/slog logger (default: a text handler on
//     Options.Log). An access log line per
//     request or TCP connection goes to Options.Log (weft-proxy batches
//     it: one write of stderr every 100 ms, --log-flush). In the text
//     format (Options.AccessLogFormat, the default) a line is words
//     ("access inbound DENIED") and key=value fields (accesslog.go); a
//     value is bare when it is printable ASCII without space or '"', else
//     a quoted Go string literal, so no path, method or reason can add a
//     line, a NUL or a field. In the JSON format (--access-log-format
//     json) the line is one object with the same keys, led by time, level
//     and msg "access" (direction and outcome hold the words), escaped to
//     printable ASCII whatever the input. HTTP lines carry caller, dest
//     (the callee), method, path, authority, status (and grpc_status),
//     dur (dur_ms in JSON), bytes_in and bytes_out, request_id and, when
//     the request has a W3C traceparent, trace_id; outbound ones also
//     route, subset, endpoint (the upstream instance's address), tries and
//     retries; a refused request its reason (the authorization denial,
//     the rate limit). Building a line allocates nothing (pooled buffers).
//     weft-proxy's writer also escapes any control byte inside a log
//     entry (an event line quoting a peer's error).
//
//     Request IDs (requestid.go): the first Weft proxy a request meets
//     adds X-Request-Id (a random UUID) when it has none, keeps a sane one
//     (one value, at most 128 bytes of letters, digits and -_.:+/=@) and
//     replaces any other; it goes on to the app and the upstream, so both
//     sidecars' access lines and the apps see the same ID. gRPC calls get
//     it too.
//
// # A dead or failing application
//
// When the callee's sidecar cannot hand a request to its application it
// says so in a way its callers' sidecars act on, and an application cannot
// fake (apphealth.go):
//
//   - The signal: 503 with the header X-Weft-Unavailable: app
//     (HeaderUnavailable, ValueUnavailableApp); for gRPC, a trailers-only
//     UNAVAILABLE (grpc-status 14, a message) with the same header. The
//     inbound sends it when the app refuses the connection or a pooled
//     connection to it, which the app had reset, takes no byte of the
//     request (nothing of the request reached it), when the app's health check says it is down
//     (the app is not called), and, for GET, HEAD, OPTIONS and TRACE
//     without a body only, when the app closes the connection before any
//     byte of a response (such a request may have run, and may run again).
//     A POST the app dropped that way gets 502, as before: it may have
//     been acted on. Before it answers, the inbound reads what is left of
//     the request body (up to 64 KiB, for at most 500 ms), so that the
//     caller's sidecar has read all of it too.
//   - No forging: the inbound removes X-Weft-Unavailable from every
//     response (headers and trailers) of its application, in any spelling
//     net/http reads as that name; a 503 of the app's own is passed on as
//     any other status.
//   - The caller's sidecar (outbound.go, exchange.afterResponse) takes the
//     signal for "try another endpoint": for any method, with or without a
//     route or retry conditions, when the request has no body or its body
//     was recorded whole (every body is recorded up to 64 KiB; a larger
//     one cannot be sent again, and the 503 goes to the app). It counts
//     against the route's retry budget when the route has a retry policy
//     (else the tries are bounded as for a failed dial, 3), against its
//     attempts, and against the circuit breaker's max_retries. With no other
//     endpoint left the caller gets 503 (gRPC UNAVAILABLE) with the header.
//   - Health: a refused connection takes the app down at once. With a
//     health check (meshapi.HealthCheck, from the service's health_check
//     block; package health) the checker decides when it is back
//     (healthy_threshold passing probes; the next probe runs at once), and
//     while it is down new requests get the signal without calling the app
//     and a TCP inbound closes new connections. Without one, the sidecar
//     dials the app's port once a second until it accepts (the controller
//     may have taken the instance out, so no request would come), or the
//     app's next answer, whichever is first, brings it back. Every change goes to
//     Options.Health (HealthReporter.ReportHealth; or the reporter given
//     to SetHealthReporter, which hears the last state at once), which
//     the controller client carries to the controller: NewClient makes
//     the client the reporter when it implements ReportHealth; GET /health on the admin handler
//     shows the check and its counts (503 while down), and /config the
//     check's configuration.
//
// # Canonical requests
//
// A rule and the application must read a request the same way, or a
// spelling walks around the rule (invariant 6 of DESIGN.md). Every HTTP
// listener, inbound and outbound, puts each request in one canonical form
// before it routes, authorizes or limits it (package canon; the inputs
// rules read are checked in normalize_inputs.go), and forwards
// that form, so the application receives what was authorized:
//
//   - Path: a percent-encoded unreserved character (ALPHA DIGIT - . _ ~)
//     is decoded ("/%61dmin" is "/admin", "%2e" is "."); every other
//     percent-encoding is written in upper case; a byte that may not stand
//     bare in a path is percent-encoded; repeated slashes are merged;
//     dot-segments are removed as RFC 3986 5.2.4 says, after decoding (so
//     "/x/../admin", "/%2e%2e/admin" and "//admin" are all "/admin", and
//     ".." never climbs above "/"). Rules match the decoded canonical path;
//     the next hop gets it escaped. A path already canonical is used as it
//     is, without allocating.
//   - Path parameters: ";" stays in the path the application receives,
//     but rules match the path without each segment's parameters (from
//     ";" to the end of the segment), as Tomcat and Jetty route it:
//     "/admin;jsessionid=1" is matched as "/admin". An encoded ";" (%3B)
//     is part of a name.
//   - Method: compared case-sensitively (RFC 9110). A method that spells
//     a standard one (GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE
//     PATCH) in another case ("delete", "Get"), and one that is not a
//     token, is refused: some applications take "delete" for DELETE,
//     while a rule on DELETE does not hold for it. The policy language
//     only lets rules name the standard methods, in upper case.
//   - Query: left as the client wrote it, but refused when net/url cannot
//     parse it one way (a ";" separator, an invalid percent-encoding):
//     rules read parameters as net/url decodes them (so "%64ebug" is
//     "debug"), and the reverse proxy would otherwise drop such
//     parameters silently.
//   - Headers: names are matched in any case (net/http makes them
//     canonical). A rule reads one value; when the inbound's rules
//     (permissions, rate limits) read a header or query parameter, a
//     request that sends it twice, a header under that name with
//     underscores for dashes ("X_Role" for "X-Role", one name to CGI-style
//     servers), or a query parameter in another case ("DEBUG" for "debug")
//     is refused, because the rule and the application could pick
//     different values. A header's field is one value, read whole:
//     "X-Role: user, admin" is the value "user, admin" (an exact rule on
//     "admin" does not match it; a regex can).
//
// Refused with 400 and a short body that says why ("weft: bad request:
// ..."): an encoded slash (%2F) or backslash (%5C), a backslash, NUL or
// any other control character, encoded or not, an invalid
// percent-encoding, a dot-segment with parameters ("/..;/admin", which
// Tomcat resolves as ".."), a target that is not a path beginning with
// "/" ("*" is taken for OPTIONS only; CONNECT is not proxied), and the
// methods, queries and repeated inputs above. There is no option to let
// encoded slashes through for a service: applications disagree on whether
// "%2F" separates segments, and a rule cannot know which reading its
// application takes.
//
// Not normalized: case ("/ADMIN" is another path: rules on an application
// that routes without regard to case need each spelling, or a regex), a
// trailing slash ("/admin/" is not "/admin"; a path_prefix rule covers
// both) and "%25", which is decoded once ("/%2561dmin" reaches the
// application as "/%2561dmin", which it decodes to "/%61dmin", not
// "/admin"; an application that decodes twice is not protected). For a
// deny, path_prefix is the safer form.
//
// # Reconciliation
//
// Apply validates the whole config, then binds every new socket before
// changing anything, so a bad config or a port in use rejects the version
// and leaves the running listeners alone. A listener whose key and address
// stay gets the new endpoints, balancer and authorization swapped in
// atomically; one whose protocol changes gets a new handler on the same
// socket; one whose address changes gets a new socket (or takes over the
// socket another key gives up at that address). A listener that goes away
// stops accepting and its connections are left to finish; Close ends them
// after Options.DrainTimeout.
//
// L7 authorization: an authorization rule may carry permissions; the
// rule that wins for the caller (exact source over "*", deny among
// equals) decides each request by its first matching permission, else the
// default action.
//
// Tap (tap.go): the controller may ask the sidecar, on the Tap stream that
// runs beside its config stream (RunTap, set as control.Options.Beside by
// NewClient), for an event of every request that matches a filter
// (direction, caller, upstream, path prefix, method) until an end time.
// inbound.go and outbound.go make one call each where a request ends
// (inbound: with the authorization's denial reason, the access log's), and
// only when tapping() holds: with no tap running a request pays one atomic
// load and no allocation (BenchmarkHTTPChain: 250 allocs/op with and
// without the feature). Bounds: MaxTaps taps, each at most its max_rps
// (MaxTapRPS at most), MaxTapEventsPerSecond in all, and a queue that
// drops, and counts, what a slow stream does not take: tapping never
// holds a request up.
//
// # External services (egress)
//
// An upstream with Upstream.external set (external.go) is a destination
// outside the mesh: the same outbound listener, but the sidecar decides
// the intentions to it itself (External.authz, with its own identity as
// the caller: 403 and the reason for a denied request, a closed
// connection for denied TCP), dials address:port with TLS verified
// against the policy's CA bundle and the server name (also the SNI), or
// plain TCP without tls, instead of mesh mTLS, and sends the declared host
// as the Host header. A failed handshake says which check failed (502).
//
// # Serving several instances (the node proxy)
//
// One process may serve several instances, each as its own sidecar would
// (weft-proxy --node; docs/deployment-models.md): it composes one Proxy
// and one control.Client per instance, every pair independent. Each
// instance's inbound binds its own mesh address, so the socket a
// connection arrives on picks the instance, its certificate and its
// authorization; each instance's upstream listeners bind its own address,
// so the listener an app connects to says which instance calls, and the
// call goes out with that instance's certificate. Each has its own
// configuration stream (the controller's checks of a stream, a report, a
// tap or a renewal against the certificate's identity stay as they are),
// its own admin handler and metrics registry. The clients join with the
// node's token, which the controller honours only for instances its
// scheduler placed on that node (core/meshserver, node.go). Nothing in
// this package knows about nodes: the composition is cmd/weft-proxy's
// (node.go).
//
// # Choices
//
// HTTP/2 uses net/http's own support (Server.Protocols, Transport.Protocols)
// rather than golang.org/x/net/http2 and h2c, which are deprecated in the
// x/net version this module uses. Authorization rules name services, not
// namespaces: a caller is matched by the service in its SPIFFE ID. Metrics
// count HTTP requests; TCP connections show in the connection and byte
// series and the access log.
package proxy
