# The policy of the Kubernetes example: web calls api, api calls store
# (which may run anywhere: a pod, a Nomad job, a local process), nothing
# else passes. Pods of service S run as service account S, web and api in
# namespace "shop" (see ../README.md).
mesh {
  trust_domain   = "weft.example"
  default_action = "deny"
}

# Each binding names the namespace and service account whose pods may
# serve the service. store may run elsewhere too: it has a binding for
# each scheduler that may run it.

service "web" {
  namespace = "shop" # the pods' namespace (app.yaml): their identity is spiffe://weft.example/ns/shop/svc/web
  protocol  = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "web"
  }

  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  namespace = "shop"
  protocol  = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "api"
  }

  upstream "store" {
    local_port = 9002
  }
}

# store is in the default namespace: a local process (the test's) or a
# Nomad job is, and so must a store pod be.
service "store" {
  protocol = "http"
  binding "kubernetes" {
    namespace       = "default"
    service_account = "store"
  }
  # The test in test/kubernetes runs store as a local process.
  binding "local" { name = "store" }
}

intention "web" "api" {
  action = "allow"
}

intention "shop/api" "store" {
  action = "allow"
}
