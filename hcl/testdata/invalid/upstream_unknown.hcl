service "api" {
  upstream "stor" { # ERROR: Unknown upstream service
    local_port = 9101
  }

  upstream "cache" { # ERROR: Unknown upstream service
    local_port = 9102
  }
}

service "store" {}
