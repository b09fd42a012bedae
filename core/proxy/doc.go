// Package proxy is the sidecar data plane: the library behind weft-proxy.
// It is the last step of the data flow. The controller compiles one
// meshapi.ProxyConfig per instance and streams it; this package applies
// it atomically and carries the instance's traffic between sidecars over
// mTLS.
//
// # Entry points
//
//	p := proxy.New(proxy.Options{})       // no listeners yet
//	p.SetCredentials(creds)               // certificate, key, mesh roots
//	err := p.Apply(version, cfg)          // reconcile listeners; error = NACK
//	http.Handle("/", p.AdminHandler())    // /ready, /metrics, /config
//	p.Close()                             // idempotent, bounded drain
//
// In production a Client (client.go) drives the Proxy: it joins the mesh
// with the single-use join token (Join over TLS verified with the trust
// bundle), subscribes to StreamConfig over mTLS, applies every version and
// acknowledges it (applied_version) or rejects it (rejected_version and
// error_detail, keeping the last good config), renews the certificate at
// half its lifetime, and reconnects with jittered exponential backoff
// across the controller addresses when a stream breaks. The Proxy keeps
// serving with its last config and certificate meanwhile. With a data
// directory (datadir.go) the certificate and the last config survive a
// restart. Tests
// drive the Proxy directly, with certificates from proxytest.
//
// # Where a connection goes
//
//   - listeners.go: one socket per listener key ("inbound",
//     "upstream/<name>"), an accept loop, and the handler swapped into it.
//   - inbound.go: the inbound listener terminates mTLS (client certificate
//     required, checked with spiffe.VerifyPeer against the current roots
//     and the config's trust domain), authorizes the caller's service
//     against inbound.authz (through policy.Decide: an exact source beats
//     "*", deny wins among equals, else the default action, deny by
//     default) and forwards to the application: TCP by piping bytes, HTTP
//     protocols by reverse-proxying each request (HTTP/1.1 to the app for
//     PROTOCOL_HTTP, h2c for HTTP2 and GRPC) with X-Weft-Caller and
//     X-Forwarded-Client-Cert set. A denied request gets 403 (gRPC:
//     PERMISSION_DENIED); a denied TCP connection is closed.
//   - outbound.go: each upstream listens on a local port for the app
//     (plain TCP; HTTP/1.1 or h2c prior knowledge for HTTP protocols),
//     picks an endpoint per connection or request, and dials it over mTLS,
//     requiring the exact SPIFFE ID of the upstream. HTTP goes over pooled
//     HTTP/2 connections. A failed dial tries another endpoint (up to 3;
//     requests only when they have no body). No endpoint: 503 (gRPC:
//     UNAVAILABLE).
//   - lb.go: round robin, and least request as the power of two random
//     choices over requests (or connections) in flight.
//   - credentials.go, tls.go: credentials, and the TLS configs that read
//     the current certificate and roots from atomic pointers, so renewals
//     and root rotations need no restart and drop no connection.
//   - http.go: what the HTTP paths share (status capture, gRPC errors).
//   - admin.go, metrics.go: the admin endpoints and the Prometheus series
//     (private registry): weft_requests_total, weft_request_duration_seconds,
//     weft_bytes_total, weft_connections_total, weft_connections_active,
//     weft_authz_denied_total, weft_config_version. An access log line per
//     request or TCP connection goes to Options.Log (stderr).
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
// # Choices
//
// HTTP/2 uses net/http's own support (Server.Protocols, Transport.Protocols)
// rather than golang.org/x/net/http2 and h2c, which are deprecated in the
// x/net version this module uses. Authorization rules name services, not
// namespaces: a caller is matched by the service in its SPIFFE ID. Metrics
// count HTTP requests; TCP connections show in the connection and byte
// series and the access log.
package proxy
