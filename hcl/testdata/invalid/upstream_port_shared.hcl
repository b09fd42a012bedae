service "store" {}
service "auth" {}
service "cache" {}

service "api" {
  upstream "store" {
    local_port = 9101
  }

  upstream "auth" {
    local_port = 9101 # ERROR: Duplicate local port
  }

  upstream "cache" {
    local_port = 9101 # ERROR: Duplicate local port
  }
}

# Another service may use the same local port: ports are per instance.
service "web" {
  upstream "store" {
    local_port = 9101
  }
}
