mesh {
  trust_domain = "weft.test"
  egress       = "deny"
}

service "web" {
  binding "local" { name = "web" }
  protocol = "http"
  upstream "payments" { local_port = 9100 }
  upstream "ledger" { local_port = 9101 }
  upstream "status" { local_port = 9102 }
}

# HTTPS, with TLS originated by web's sidecar.
external_service "payments" {
  host     = "api.payments.example"
  address  = "127.0.115.10"
  port     = 443
  protocol = "http"
  tls {
    ca_file     = "ca.pem"
    sni         = "edge.payments.example"
    min_version = "1.3"
  }
}

# TCP over TLS, with a client certificate on the caller's host.
external_service "ledger" {
  host = "ledger.example"
  port = 7000
  tls {
    ca_file   = "ca.pem"
    cert_file = "/etc/weft/ledger.pem"
    key_file  = "/etc/weft/ledger-key.pem"
  }
}

# Plain HTTP, no TLS.
external_service "status" {
  host     = "10.1.2.3"
  port     = 8080
  protocol = "http"
}

intention "web" "payments" {
  permission {
    action = "deny"
    match { path_prefix = "/admin" }
  }
  permission {
    action = "allow"
    match { path_prefix = "/" }
  }
}
intention "web" "ledger" { action = "allow" }
