service "api" {
  protocol = "http"
  health_check { # ERROR: Health check without a kind
    interval = "2s"
  }
  health_check { # ERROR: Duplicate health_check block
    http = "/healthz"
  }
}

service "cart" {
  health_check {
    http = "/healthz"
    tcp  = true # ERROR: Conflicting health check kinds
  }
}

service "store" {
  health_check {
    http                = "healthz" # ERROR: Invalid health check path
    expect_status       = 700 # ERROR: Invalid status
    interval            = "50ms" # ERROR: Invalid health check interval
    timeout             = "1ms" # ERROR: Invalid health check timeout
    unhealthy_threshold = 0 # ERROR: Invalid threshold
    healthy_threshold   = 11 # ERROR: Invalid threshold
    path                = "/x" # ERROR: Unsupported argument
  }
}

service "search" {
  health_check {
    http = "/health z" # ERROR: Invalid health check path
  }
}

service "users" {
  health_check {
    tcp           = false # ERROR: TCP check turned off
  }
}

service "orders" {
  protocol = "grpc"
  health_check {
    grpc          = "shop/Orders" # ERROR: Invalid gRPC service name
  }
}

service "billing" {
  protocol = "grpc"
  health_check {
    grpc          = true
    expect_status = 200 # ERROR: Status without an HTTP check
    interval      = "1s"
    timeout       = "2s" # ERROR: Health check timeout above its interval
  }
}

service "ledger" {
  health_check {
    grpc = false # ERROR: gRPC check turned off
  }
}

service "audit" {
  health_check {
    grpc = 3 # ERROR: Incorrect attribute value type
  }
}

service "mail" {
  health_check {
    http = "/ok#frag" # ERROR: Invalid health check path
  }
}
