service "web" {
  binding "local" { name = "web" }
  protocol = "http"
  upstream "payments" { local_port = 9100 }
  upstream "nowhere" { local_port = 9101 } # ERROR: Unknown upstream service
}

external_service "payments" {
  host = "api.payments.example"
  port = 443
  tls {
    ca_file = "bad.pem" # ERROR: Invalid CA file
  }
}

external_service "Bad_Name" { # ERROR: Invalid external service name
  host = "https://x.example" # ERROR: Invalid external host
  port = 70000 # ERROR: Invalid external port
}

external_service "grpc-out" {
  host     = "grpc.example"
  port     = 443
  protocol = "grpc" # ERROR: HTTP/2 to an external service needs TLS
}

external_service "missing" {
  host = "missing.example"
  port = 443
  tls {
    ca_file = "no-such-file.pem" # ERROR: Invalid CA file
    sni     = "a b" # ERROR: Invalid SNI
  }
}

external_service "certs" {
  host = "certs.example"
  port = 443
  tls {
    ca_file   = "ca.pem"
    cert_file = "client.pem" # ERROR: Relative client certificate path
    key_file  = "/etc/client-key.pem"
  }
}

external_service "halfcert" {
  host = "half.example"
  port = 443
  tls { # ERROR: Client certificate without its key
    ca_file   = "ca.pem"
    cert_file = "/etc/client.pem"
  }
}

external_service "web" { # ERROR: Duplicate service
  host = "web.example"
  port = 80
}

intention "payments" "web" { action = "allow" } # ERROR: External service as intention source
