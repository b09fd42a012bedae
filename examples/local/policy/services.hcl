# The demo's services and the upstreams each may call. An upstream's
# local_port is where the caller's sidecar listens for it, on the caller's
# own instance address (the UPSTREAM_* URLs in ../workloads.hcl).

service "frontend" {
  protocol = "http"

  upstream "api" {
    local_port = 9001
  }

  # Declared, so the frontend's sidecar listens for it; refused, since no
  # intention allows frontend -> store.
  upstream "store" {
    local_port = 9002
  }
}

service "api" {
  protocol = "http"

  upstream "store" {
    local_port = 9002
  }
}

service "store" {
  protocol = "http"
}
