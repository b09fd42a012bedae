service "api" {
  protocol = "http"
  timeouts {
    idle = 5 # ERROR: Invalid duration
  }
  timeouts { # ERROR: Duplicate timeouts block
  }

  route "h" {
    request_headers {
      set    = { "host" = "evil" } # ERROR: Reserved header
      add    = { "bad name" = "x" } # ERROR: Invalid header name
      remove = ["X-Weft-Caller"] # ERROR: Reserved header
    }
    response_headers {
      append = {} # ERROR: Unsupported argument
    }
    response_headers { # ERROR: Duplicate response_headers block
    }
  }
}
