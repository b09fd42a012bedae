jwt_provider "corp" {
  issuer    = "https://idp.example.com"
  jwks_file = "corp.jwks.json"
}

# A gateway's service may require tokens whatever its protocol (it sees
# requests on the gateway's HTTP listeners), but not on a listener that
# carries connections.
service "edge" {
  binding "local" { name = "edge" }
  jwt { provider = "corp" }
}
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}
service "db" {
  binding "local" { name = "db" }
}

gateway "edge" {
  listener "web" {
    port     = 8080
    protocol = "http"
    route "a" { service = "web" }
  }
  listener "db" {
    port     = 5432
    protocol = "tcp" # ERROR: Token check on a connection listener
    route "a" { service = "db" }
  }
  listener "pass" {
    port     = 9443
    protocol = "tls" # ERROR: Token check on a connection listener
    route "a" { service = "db" }
  }
}

# The gateway removes corp's token (no forward_token) before it calls
# web, whose sidecar would check the permission's claim on it.
intention "edge" "web" {
  permission {
    action = "allow"
    jwt { # ERROR: Token removed by the gateway
      provider = "corp"
      claims   = { role = "admin" }
    }
  }
}

service "edge2" {
  binding "local" { name = "edge2" }
  rate_limit "per-user" {
    requests_per_second = 10
    per_jwt_subject     = "corp"
  }
  rate_limit "per-ip" {
    requests_per_second = 10
    per_source_ip       = true
  }
  rate_limit "callers" {
    requests_per_second = 10
    callers             = ["web"] # ERROR: Rate limit per caller on a gateway
  }
  rate_limit "all" {
    requests_per_second = 10
    scope               = "global" # ERROR: Global rate limit on a gateway
  }
}

gateway "edge2" {
  listener "web" {
    port     = 8081
    protocol = "http"
    route "a" { service = "web" }
  }
}
