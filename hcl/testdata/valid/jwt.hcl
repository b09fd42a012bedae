jwt_provider "corp" {
  issuer         = "https://idp.example.com"
  audiences      = ["shop", "admin"]
  jwks_url       = "https://idp.example.com/.well-known/jwks.json"
  jwks_refresh   = "1m"
  clock_skew     = "10s"
  forward_claims = { sub = "X-User", role = "x-role" }
}

jwt_provider "partners" {
  issuer        = "https://partners.example.com"
  jwks_file     = "partners.jwks.json"
  cookie        = "session"
  query         = "access_token"
  forward_token = true
}

service "web" {
  binding "local" { name = "web" }
  protocol = "http"
  upstream "api" { local_port = 9001 }
}

service "api" {
  binding "local" { name = "api" }
  protocol = "http"
  jwt { providers = ["corp", "partners"] }
  rate_limit "per-user" {
    requests_per_second = 10
    per_jwt_subject     = "corp"
  }
}

intention "web" "api" {
  permission {
    action = "allow"
    match { path_prefix = "/admin" }
    jwt {
      provider = "corp"
      claims   = { role = "admin", "realm_access.roles" = ["ops", "sre"], verified = true }
    }
  }
  permission {
    action = "deny"
    match { path_prefix = "/admin" }
  }
  permission {
    action = "allow"
    jwt { provider = "partners" }
  }
}
