service "api" {
  protocol = "http"
}

service "api" { # ERROR: Duplicate service
  protocol = "grpc"
}
