# An ingress gateway in front of the demo's frontend. The gateway is a
# service of its own, public-gateway: its instances run weft-proxy, which
# the controller's configuration puts in gateway mode, and it calls the
# frontend over mTLS with the identity
# spiffe://weft.local/ns/default/svc/public-gateway, so the intention below
# is what lets it in.
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}

service "public-gateway" {
  # Who may run the gateway, per scheduler (one of them is enough).
  binding "local" { name = "public-gateway" }
  binding "nomad" {
    namespace = "default"
    job       = "public-gateway"
  }
  binding "kubernetes" {
    namespace       = "default"
    service_account = "public-gateway"
  }
  binding "mesos" { framework_name = "weft-example" }
}

service "frontend" {
  protocol = "http"
  binding "local" { name = "frontend" }
  binding "nomad" {
    namespace = "default"
    job       = "frontend"
  }
  binding "kubernetes" {
    namespace       = "default"
    service_account = "frontend"
  }
  binding "mesos" { framework_name = "weft-example" }
}

gateway "public" {
  service = "public-gateway"

  # TLS from outside: the certificate and key are files on the gateway's
  # host (README.md makes a test pair with openssl).
  listener "https" {
    port     = 8443
    protocol = "https"
    tls {
      cert_file   = "/tmp/weft-gateway-demo/shop.crt"
      key_file    = "/tmp/weft-gateway-demo/shop.key"
      sni         = ["shop.example.com"]
      min_version = "1.2"
    }
    route "shop" {
      hosts   = ["shop.example.com"]
      service = "frontend"
      retry {
        attempts = 2
        on       = ["connect-failure", "gateway-error"]
      }
      timeouts { request = "10s" }
      response_headers {
        set = { "strict-transport-security" = "max-age=63072000" }
      }
    }
  }

  # Plain HTTP, for trying it with curl without certificates.
  listener "http" {
    port     = 8080
    protocol = "http"
    route "shop" {
      service = "frontend"
    }
  }
}

intention "public-gateway" "frontend" { action = "allow" }
