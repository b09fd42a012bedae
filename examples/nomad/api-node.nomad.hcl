# The api in node mode: run it instead of api.nomad.hcl, after
# node-proxy.nomad.hcl. The group has no sidecar task; the tag
# weft_proxy_mode=node on its service hands its instances to the node
# proxy of the node each is placed on, which serves each with its own
# identity (spiffe://.../svc/api), intentions and metrics. The ports are
# as for a sidecar: mesh (where the node proxy takes mTLS calls for this
# instance) and upstream_store (where the node proxy listens for this
# instance's calls to store: the listener says which instance calls).
variable "weft_bin" {
  description = "directory holding weft-demo-app on the client"
}

job "api" {
  group "api" {
    count = 2

    shutdown_delay = "2s"

    network {
      port "app" {}
      port "mesh" {}
      port "upstream_store" {}
    }

    service {
      name     = "api"
      provider = "nomad"
      port     = "app"
      tags     = ["weft_proxy_mode=node"]

      check {
        type     = "http"
        path     = "/healthz"
        interval = "1s"
        timeout  = "1s"
      }
    }

    task "app" {
      driver = "raw_exec"

      config {
        command = "${var.weft_bin}/weft-demo-app"
      }

      env {
        HOST           = "127.0.0.1"
        PORT           = "${NOMAD_PORT_app}"
        WEFT_SERVICE   = "api"
        WEFT_INSTANCE  = "${NOMAD_ALLOC_ID}/api"
        UPSTREAM_STORE = "http://127.0.0.1:${NOMAD_PORT_upstream_store}"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
