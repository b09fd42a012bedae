mesh {
  protection {
    read_header_timeout        = "5s"
    max_header_count           = 50
    max_connections_per_source = 100
    max_in_flight              = 1000
    blocking {
      threshold = 20
      addresses = true
    }
  }
}

service "api" {
  binding "local" { name = "api" }
  protocol = "http"
  protection {
    max_in_flight          = 64
    max_request_body_bytes = 1048576
  }
  rate_limit "per-ip" {
    requests_per_second = 10
    per_source_ip       = true
  }
}
