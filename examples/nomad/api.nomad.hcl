# The api, written by hand: the sidecar is a task of the group
# (prestart, sidecar) that joins the mesh with the task's workload
# identity; the group's network has the ports the nomad adapter reads:
# the app's port (the service's port), mesh (the sidecar's mTLS port) and
# upstream_store (where the sidecar listens for the api's calls to store).
variable "weft_bin" {
  description = "directory holding weft-proxy and weft-demo-app on the client"
}

variable "controller" {
  default = "127.0.0.1:7410"
}

variable "trust_bundle" {
  default = "/tmp/weft-nomad-demo/ca/ca.crt"
}

job "api" {
  group "api" {
    count = 2

    # Callers' sidecars drop a stopping allocation at once; this keeps its
    # app serving meanwhile, so updates lose no request.
    shutdown_delay = "2s"

    network {
      port "app" {}
      port "mesh" {}
      port "admin" {}
      port "upstream_store" {}
    }

    # The check decides who gets traffic: an allocation whose check fails
    # (POST /healthz/fail to its app) leaves every caller's endpoints
    # until it passes again.
    service {
      name     = "api"
      provider = "nomad"
      port     = "app"

      check {
        type     = "http"
        path     = "/healthz"
        interval = "1s"
        timeout  = "1s"
      }
    }

    task "weft-proxy" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      identity {
        env = true
      }

      config {
        command = "${var.weft_bin}/weft-proxy"
        args = [
          "--instance", "${NOMAD_ALLOC_ID}/api",
          "--controller", var.controller,
          "--trust-bundle", var.trust_bundle,
          "--admin", "${NOMAD_ADDR_admin}",
          "--credential-adapter", "nomad",
          "--credential-env", "NOMAD_TOKEN",
        ]
      }

      kill_timeout = "5s"

      resources {
        cpu    = 50
        memory = 64
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
