service "frontend" {
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

  upstream "store" {
    local_port = 9101
    lb         = "least_request"
  }

  upstream "auth" {
    local_port = 9102
  }
}
