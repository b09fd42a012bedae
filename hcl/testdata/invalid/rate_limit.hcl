jwt_provider "corp" {
  issuer   = "https://idp.example.com"
  jwks_url = "https://idp.example.com/.well-known/jwks.json"
}

service "web" {}
service "db" {
  rate_limit "r" { # ERROR: Rate limit on a TCP service
    requests_per_second = 1
  }
  connection_limit { # ERROR: Empty connection limit
  }
  connection_limit { # ERROR: Duplicate connection_limit block
    max = 0 # ERROR: Invalid connection limit
  }
}

service "api" {
  protocol = "http"
  rate_limit "a" {
    requests_per_second = 0 # ERROR: Invalid rate
    burst               = 0 # ERROR: Invalid burst
    callers             = ["wbe"] # ERROR: Unknown caller
  }
  rate_limit "a" { # ERROR: Duplicate rate limit
    requests_per_second = 1
    per_caller          = "yes" # ERROR: Incorrect attribute value type
    match {
      grpc_service = "x.Y" # ERROR: gRPC match on a non-gRPC service
    }
    match { # ERROR: Duplicate match block
    }
  }
  rate_limit "Bad" { # ERROR: Invalid rate limit name
    requests_per_second = 1
  }
  rate_limit "none" { # ERROR: Missing required argument
  }
  rate_limit "g" {
    requests_per_second = 1
    per_caller          = true
    scope               = "global" # ERROR: Global rate limit per caller
  }
  rate_limit "h" {
    requests_per_second = 1
    scope               = "everywhere" # ERROR: Invalid rate limit scope
  }
  rate_limit "users" {
    requests_per_second = 1
    per_jwt_subject     = "corp"
    scope               = "global" # ERROR: Global rate limit per end user
  }
  rate_limit "ips" {
    requests_per_second = 1
    per_source_ip       = true
    scope               = "global" # ERROR: Global rate limit per source address
  }
}
