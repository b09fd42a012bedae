service "frontend" {
  binding "nomad" {
    namespace = "default"
    job       = "frontend"
  }
  protocol = "http"

  upstream "api" {
    local_port = 9100
  }

  upstream "auth" {
    local_port = 9102
    lb         = "round_robin"
  }
}

service "api" {
  namespace = "shop"
  protocol  = "grpc"

  # Only the shop namespace's "api" job may serve api, from any of its
  # groups; a second job there may serve it from its "web" group alone.
  binding "nomad" {
    namespace = "shop"
    job       = "api"
    group     = "*"
  }
  binding "nomad" {
    namespace = "shop"
    job       = "api-canary"
    group     = "web"
  }

  upstream "store" {
    local_port = 9101
    lb         = "least_request"
  }

  upstream "auth" {
    local_port = 9102
  }
}
