service "api" {
  protocol = "http"

  route "r" {
    retry {
      attempts        = 0 # ERROR: Invalid attempts
      per_try_timeout = "soon" # ERROR: Invalid duration
      on              = ["5xx", "gateway_error"] # ERROR: Invalid retry condition
      budget {
        percent = -1 # ERROR: Invalid budget percent
      }
      budget { # ERROR: Duplicate budget block
      }
    }
    retry { # ERROR: Duplicate retry block
      on = [] # ERROR: No retry conditions
    }
    timeouts {
      request = "0s" # ERROR: Invalid duration
      connect = "1s" # ERROR: Unsupported argument
    }
  }
}

service "web" {
  protocol = "http"
  timeouts {
    request = "1s"
  }
  route "r" {
    retry {
      per_try_timeout = "2s" # ERROR: Per-try timeout not below request timeout
    }
  }
}
