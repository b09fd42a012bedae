# The demo's services and the upstreams each may call. An upstream's
# local_port is where the caller's sidecar listens for it, on the caller's
# own instance address (the UPSTREAM_* URLs in ../workloads.hcl).

# Each binding names the workload allowed to serve its service: for the
# local adapter, the block label in ../workloads.hcl. Any other workload
# that claims the service name gets no certificate and no traffic.

service "frontend" {
  protocol = "http"
  binding "local" { name = "frontend" }

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
  binding "local" { name = "api" }

  upstream "store" {
    local_port = 9002
  }
}

service "store" {
  protocol = "http"
  binding "local" { name = "store" }
}
