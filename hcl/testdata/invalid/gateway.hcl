service "edge" {
  binding "local" { name = "edge" }
}
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}
service "db" {
  binding "local" { name = "db" }
}

gateway "edge" {
  listener "web" { # ERROR: HTTPS listener without tls
    port     = 8443
    protocol = "https"
    route "a" {
      hosts   = ["Shop.example.com"] # ERROR: Invalid host
      service = "web"
      split "v9" { weight = 100 } # ERROR: Unknown subset
    }
    route "b" {
      hosts   = ["b.example.com"]
      service = "nope" # ERROR: Unknown service
    }
    route "c" {
      hosts   = ["c.example.com"]
      service = "db" # ERROR: Request route to a TCP service
    }
    route "d" {
      hosts   = ["d.example.com"]
      service = "edge" # ERROR: Route to the gateway itself
    }
  }
  listener "web" { # ERROR: Duplicate listener
    port     = 8444
    protocol = "http"
    route "a" { service = "web" }
  }
  listener "plain" {
    port     = 8443 # ERROR: Port used twice
    protocol = "http"
    route "a" { service = "web" }
  }
  listener "tcp" {
    port     = 5432
    protocol = "tcp"
    tls { mesh_certificate = true } # ERROR: tls block on a listener that does not end TLS
    route "a" { # ERROR: HTTP settings on a connection route
      service = "db"
      retry { attempts = 2 }
    }
    route "b" { # ERROR: Second route on a TCP listener
      service = "web" # ERROR: Connection route to an HTTP service
    }
  }
  listener "tls" {
    port     = 9443
    protocol = "https"
    tls { # ERROR: Two certificates
      cert_file        = "a.crt"
      key_file         = "a.key"
      mesh_certificate = true
      min_version      = "1.1" # ERROR: Invalid TLS version
    }
    route "a" { service = "web" }
  }
  listener "empty" { # ERROR: Listener without routes
    port     = 9000
    protocol = "quic" # ERROR: Invalid listener protocol
  }
}

gateway "lost" { # ERROR: Gateway without listeners
  service = "nowhere" # ERROR: Gateway service not declared
}
