# The policy of the Kubernetes example: web calls api, api calls store
# (which may run anywhere: a pod, a Nomad job, a local process), nothing
# else passes. Pods of service S run as service account S in namespace
# "shop" (see ../README.md).
mesh {
  trust_domain   = "weft.example"
  default_action = "deny"
}

# Each binding names the namespace and service account whose pods may
# serve the service. store may run elsewhere too: it has a binding for
# each scheduler that may run it.

service "web" {
  protocol = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "web"
  }

  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "api"
  }

  upstream "store" {
    local_port = 9002
  }
}

service "store" {
  protocol = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "store"
  }
  # The test in test/kubernetes runs store as a local process.
  binding "local" { name = "store" }
}

intention "web" "api" {
  action = "allow"
}

intention "api" "store" {
  action = "allow"
}
