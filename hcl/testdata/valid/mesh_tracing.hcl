mesh {
  trust_domain = "weft.local"

  tracing {
    endpoint      = "127.0.0.1:4318"
    protocol      = "http"
    sampling      = 0.01
    service_name  = "{namespace}.{service}"
    max_batch     = 64
    max_queue     = 1024
    batch_timeout = "250ms"
  }
}
