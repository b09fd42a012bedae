service "api" {
  port = 8080 # ERROR: Unsupported argument

  listener "/" { # ERROR: Unsupported block type
  }

  upstream { # ERROR: Missing service for upstream
    local_port = 9000
  }
}
