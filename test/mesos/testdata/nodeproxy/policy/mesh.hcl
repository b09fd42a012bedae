# The node-proxy mesh of TestMesosNodeProxy: frontend (sidecar) and batch
# (node mode) both have api (node mode) as an upstream; frontend may call
# it, batch may not.
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}

service "frontend" {
  protocol = "http"
  binding "mesos" { framework_name = "weft-example" }
  upstream "api" {
    local_port = 9001
  }
}

service "batch" {
  protocol = "http"
  binding "mesos" { framework_name = "weft-example" }
  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"
  binding "mesos" { framework_name = "weft-example" }
}

intention "frontend" "api" {
  action = "allow"
}

intention "batch" "api" {
  action = "deny"
}
