# The mesh: its trust domain, and default deny, so that no call passes
# without an intention (see intentions.hcl).
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"

  # Tracing: every sidecar continues the W3C (traceparent) or B3 context a
  # request carries, or starts a trace, and exports its spans with OTLP.
  # Run a collector (Jaeger: `make jaeger` builds one into
  # ~/.cache/weft/jaeger-1.75.0) and uncomment; a change applies without
  # restarting a sidecar, and removing the block turns tracing off.
  # tracing {
  #   endpoint = "127.0.0.1:4317" # OTLP gRPC; protocol = "http" for :4318
  #   sampling = 1.0              # a fraction of new traces; a caller's decision always wins
  # }
}
