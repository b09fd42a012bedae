service "store" {}
service "auth" {}

service "api" {
  upstream "store" {
    local_port = 9101
    lb         = "least_requests" # ERROR: Invalid load balancer
  }

  upstream "auth" {
    local_port = 9102
    lb         = "fastest" # ERROR: Invalid load balancer
    timeout    = "5s" # ERROR: Unsupported argument
  }
}
