service "api" {
  circuit_breaker { # ERROR: Empty circuit breaker
  }
  circuit_breaker { # ERROR: Duplicate circuit_breaker block
    max_pending = 5 # ERROR: Pending requests without a request or connection limit
  }
}

service "cart" {
  circuit_breaker {
    max_requests = 0 # ERROR: Invalid limit
    max_retries  = -1 # ERROR: Invalid limit
    max_queue    = 1 # ERROR: Unsupported argument
  }
  outlier_detection {
    consecutive_5xx     = 0 # ERROR: Invalid count
    interval            = "never" # ERROR: Invalid duration
    max_ejected_percent = 101 # ERROR: Invalid percentage
  }
  outlier_detection { # ERROR: Duplicate outlier_detection block
  }
}
