# An ingress gateway in front of a shop: HTTPS with files, HTTPS with the
# mesh certificate, plain HTTP, TCP and TLS passthrough.
mesh {
  trust_domain   = "shop.test"
  default_action = "deny"
}

service "public-gateway" {
  binding "local" { name = "public-gateway" }
}

service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  subset "v1" { meta = { version = "v1" } }
  subset "v2" { meta = { version = "v2" } }
}

service "api" {
  protocol = "grpc"
  binding "local" { name = "api" }
}

service "db" {
  binding "local" { name = "db" }
}

gateway "public" {
  service = "public-gateway"

  listener "web" {
    port     = 8443
    protocol = "https"
    tls {
      cert_file   = "/etc/weft/shop.crt"
      key_file    = "/etc/weft/shop.key"
      sni         = ["shop.example.com", "*.shop.example.com"]
      min_version = "1.3"
    }
    route "api" {
      hosts   = ["api.shop.example.com"]
      service = "api"
    }
    route "canary" {
      hosts   = ["shop.example.com"]
      service = "web"
      match {
        path_prefix = "/"
        header "x-canary" { present = true }
      }
      split "v2" { weight = 100 }
      retry { attempts = 2 }
      timeouts { request = "5s" }
      request_headers { set = { "x-edge" = "canary" } }
    }
    route "shop" {
      hosts   = ["shop.example.com"]
      service = "web"
    }
  }

  listener "internal" {
    port     = 9443
    protocol = "https"
    tls { mesh_certificate = true }
    route "all" {
      service = "web"
    }
  }

  listener "plain" {
    port     = 8080
    protocol = "http"
    route "all" {
      service = "web"
      response_headers { set = { "strict-transport-security" = "max-age=63072000" } }
    }
  }

  listener "db" {
    port     = 5432
    protocol = "tcp"
    route "db" {
      service = "db"
    }
  }

  listener "pass" {
    port     = 9444
    protocol = "tls"
    route "db" {
      hosts   = ["db.shop.example.com"]
      service = "db"
    }
  }
}

intention "public-gateway" "web" { action = "allow" }
intention "public-gateway" "api" { action = "allow" }
intention "public-gateway" "db" { action = "allow" }
