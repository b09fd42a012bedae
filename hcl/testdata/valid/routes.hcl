# Traffic management: subsets, routes, splits, retries, timeouts, headers
# and L7 intentions.
service "web" {
  binding "local" { name = "web" }
  protocol = "http"
  upstream "api" {
    local_port = 9100
  }
  upstream "cart" {
    local_port = 9101
    lb         = "maglev"
    hash {
      header = "X-User"
    }
  }
}

service "api" {
  binding "local" { name = "api" }
  protocol = "http"

  subset "v1" {
    meta = { version = "v1" }
  }
  subset "v2" {
    meta = { version = "v2" }
    tags = ["canary"]
  }

  rate_limit "search" {
    requests_per_second = 0.5
    burst               = 5
    per_caller          = true
    callers             = ["web"]
    match {
      path_prefix = "/search"
    }
  }
  rate_limit "all" {
    requests_per_second = 1000
    scope               = "global"
  }
  circuit_breaker {
    max_connections = 100
    max_requests    = 50
    max_pending     = 10
    max_retries     = 3
  }
  outlier_detection {
    consecutive_5xx    = 5
    base_ejection_time = "10s"
    success_rate {
      minimum_hosts  = 3
      request_volume = 20
      stdev_factor   = 1.2
    }
  }
  connection_limit {
    max            = 1000
    max_per_caller = 100
  }

  timeouts {
    connect = "2s"
    request = "10s"
    idle    = "5m"
    stream  = "1m"
  }

  route "canary" {
    match {
      path_prefix = "/api/"
      methods     = ["GET", "HEAD"]
      header "X-Canary" {
        exact = "1"
      }
      query "debug" {
        present = true
      }
    }
    match {
      path_regex = "/v2/.*"
    }
    split "v2" {
      weight = 100
    }
    request_headers {
      set    = { "x-route" = "canary" }
      add    = { "x-tenant" = "blue" }
      remove = ["x-debug"]
    }
    response_headers {
      remove = ["server"]
    }
    fault {
      delay         = "50ms"
      delay_percent = 10
      abort_status  = 503
      abort_percent = 1
      callers       = ["web"]
    }
  }

  route "default" {
    split "v1" {
      weight = 90
    }
    split "v2" {
      weight = 10
    }
    retry {
      attempts        = 3
      per_try_timeout = "500ms"
      on              = ["5xx", "reset", "connect-failure"]
      budget {
        percent        = 25
        min_per_second = 5
      }
    }
    timeouts {
      request = "2s"
    }
    mirror "api-next" {
      percent = 5
    }
  }
}

service "api-next" {
  binding "local" { name = "api-next" }
  protocol = "http"
}

service "cart" {
  binding "local" { name = "cart" }
  protocol = "grpc"

  route "get" {
    match {
      grpc_service = "shop.Cart"
      grpc_method  = "Get"
    }
    retry {}
  }
  route "all-cart" {
    match {
      grpc_service = "shop.Cart"
      header "x-user" {
        prefix = "test-"
        invert = true
      }
    }
  }
}

intention "web" "api" {
  permission {
    action = "deny"
    match {
      methods = ["DELETE"]
    }
  }
  permission {
    action = "allow"
    match {
      path_prefix = "/"
    }
  }
}

intention "web" "cart" {
  action = "allow"
}
