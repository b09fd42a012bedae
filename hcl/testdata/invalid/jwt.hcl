jwt_provider "corp" {
  issuer         = "https://idp.example.com"
  jwks_url       = "http://idp.example.com/jwks.json" # ERROR: Invalid jwks_url
  clock_skew     = "1h" # ERROR: Invalid clock_skew
  forward_claims = { sub = "X-Weft-Caller" } # ERROR: Reserved header
}

jwt_provider "corp" { # ERROR: Duplicate JWT provider
  issuer    = "https://idp.example.com"
  jwks_file = "a.json"
  jwks_url  = "https://idp.example.com/jwks.json" # ERROR: Two key sources
}

jwt_provider "underscores" {
  issuer         = "https://idp.example.com"
  jwks_file      = "a.json"
  forward_claims = { sub = "x_weft_caller" } # ERROR: Reserved header
}

jwt_provider "framing" {
  issuer         = "https://idp.example.com"
  jwks_file      = "a.json"
  forward_claims = { sub = "Proxy-Authorization" } # ERROR: Reserved header
}

jwt_provider "address" {
  issuer         = "https://idp.example.com"
  jwks_file      = "a.json"
  forward_claims = { ip = "X_Forwarded_For" } # ERROR: Reserved header
}

jwt_provider "nokeys" { # ERROR: Missing keys
  issuer = "https://idp.example.com"
}

jwt_provider "Bad_Name" { # ERROR: Invalid JWT provider name
  issuer    = "https://idp.example.com"
  jwks_file = "a.json"
}

service "tcp" {
  binding "local" { name = "tcp" }
  jwt { provider = "corp" } # ERROR: JWT on a TCP service
}

service "api" {
  binding "local" { name = "api" }
  protocol = "http"
  jwt { provider = "crop" } # ERROR: Unknown JWT provider
  rate_limit "users" {
    requests_per_second = 1
    per_jwt_subject     = "nobody" # ERROR: Unknown JWT provider
  }
}

service "web" {
  binding "local" { name = "web" }
  protocol = "http"
  jwt {} # ERROR: Missing JWT provider
}

intention "web" "api" {
  permission {
    action = "allow"
    jwt {
      provider = "nobody" # ERROR: Unknown JWT provider
      claims   = { role = { nested = "x" } } # ERROR: Invalid claims
    }
  }
}
