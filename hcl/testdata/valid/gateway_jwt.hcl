# An ingress gateway that requires end-user tokens: its service has a jwt
# block (no protocol: a gateway's service sees requests on its HTTP
# listeners), it passes the token on, and frontend's sidecar checks the
# claim that the intention from the gateway asks for.
mesh {
  trust_domain   = "shop.test"
  default_action = "deny"
}

jwt_provider "corp" {
  issuer         = "https://idp.example.com"
  audiences      = ["shop"]
  jwks_url       = "https://idp.example.com/.well-known/jwks.json"
  forward_claims = { sub = "X-User" }
  forward_token  = true
}

service "edge" {
  binding "local" { name = "edge" }
  jwt { provider = "corp" }
}

service "frontend" {
  protocol = "http"
  binding "local" { name = "frontend" }
}

gateway "edge" {
  listener "https" {
    port     = 8443
    protocol = "https"
    tls { mesh_certificate = true }
    route "shop" {
      hosts   = ["shop.example.com"]
      service = "frontend"
    }
  }
}

intention "edge" "frontend" {
  permission {
    action = "allow"
    jwt {
      provider = "corp"
      claims   = { role = "admin" }
    }
  }
}
