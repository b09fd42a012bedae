// Package tracing is the sidecar's distributed tracing: it continues or
// starts a trace for every HTTP and gRPC request the sidecar carries,
// records one span per hop with the mesh's attributes, and exports the
// sampled spans with OTLP (the OpenTelemetry Go SDK) to the collector the
// policy names (`mesh { tracing { ... } }`, hcl/mesh.tracing.go).
//
// Entry point: Tracer (New, then Apply with each ProxyConfig's Tracing;
// core/proxy does both). inbound.go calls Inbound when a request arrives
// from another sidecar (a server span, the child of the caller's client
// span) and outbound.go calls Outbound when the app sends one upstream (a
// client span, the child of whatever context the app passed on); each
// writes its span's context onto the request it forwards, so an app that
// passes the headers on (examples/local/demoapp does) makes one trace of
// a walk through the mesh, and the access log can read the trace ID from
// the request's traceparent. Span.End records the outcome.
//
// Propagation (propagation.go): W3C trace context (traceparent, tracestate)
// is read first, then B3 single (b3), then B3 multi (X-B3-*). Every header
// has a size limit checked before it is parsed; a malformed, repeated or
// oversized header counts as absent. The formats a request came with are
// written again downstream, traceparent always.
//
// Sampling is parent-based: a caller's decision (traceparent's sampled
// flag, B3's sampled or debug) is always honoured; a new trace is sampled
// at the policy's rate, decided on the trace ID as OpenTelemetry's
// TraceIDRatioBased does, so that every sidecar agrees. Unsampled spans
// are not recorded or exported, but their context is still propagated.
//
// Export (export.go): OTLP over gRPC (the default: weft-proxy already
// links gRPC for its controller, so it costs the binary least) or over
// HTTP with protobuf bodies, plaintext, to host:port. Finished spans go
// into a bounded queue (max_queue) and leave in batches (max_batch, at
// least every batch_timeout); a full queue drops the span, a failed
// export drops its batch, and weft_tracing_spans_total{outcome} counts
// exported, dropped and failed spans: a slow or absent collector never
// slows a request. An export error is logged at most once a minute.
//
// Changes: Apply swaps the state in whole. A new sampling rate applies to
// the next request; a new collector, protocol, service name or batching
// builds a new exporter, and the old one flushes in the background. With
// tracing off (no block in the policy) Inbound and Outbound are one
// atomic load and return nil, and the sidecar passes trace headers
// through untouched.
//
// Span attributes: weft.direction, weft.caller and weft.callee (SPIFFE
// IDs), weft.caller.service, weft.service (the callee's service),
// http.request.method, url.path, http.response.status_code,
// rpc.grpc.status_code (gRPC), and on client spans weft.route,
// weft.subset, weft.upstream.instance (host:port of the instance the
// last try went to; also server.address, server.port) and
// weft.retry_count (tries after the first). The resource's service.name
// is the policy's service_name with {service} and {namespace} filled in.
package tracing
