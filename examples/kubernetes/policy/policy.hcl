# The policy of the Kubernetes example: web calls api, api calls store
# (which may run anywhere: a pod, a Nomad job, a local process), nothing
# else passes. Pods of service S run as service account S in namespace
# "default" (see ../README.md).
mesh {
  trust_domain   = "weft.example"
  default_action = "deny"
}

service "web" {
  protocol = "http"

  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"

  upstream "store" {
    local_port = 9002
  }
}

service "store" {
  protocol = "http"
}

intention "web" "api" {
  action = "allow"
}

intention "api" "store" {
  action = "allow"
}
