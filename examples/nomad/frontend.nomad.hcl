# The frontend, with the weft stanza. Its app listens on 127.0.0.1, on the
# static port 8080, so you can call it; it reaches the api through its
# sidecar at 127.0.0.1:NOMAD_PORT_upstream_api.
#
# Host networking (network_mode = "host"), because the walkthrough's dev
# agent is bound to loopback: see "Bridge networking" in README.md for the
# default, and why.
variable "weft_bin" {
  description = "directory holding weft-demo-app on the client"
}

variable "http_port" {
  default = 8080
}

job "frontend" {
  group "frontend" {
    network {
      port "app" {
        static = var.http_port
      }
    }

    weft {
      network_mode = "host"

      upstream "api" {}
    }

    task "app" {
      driver = "raw_exec"

      config {
        command = "${var.weft_bin}/weft-demo-app"
      }

      env {
        HOST          = "127.0.0.1"
        PORT          = "${NOMAD_PORT_app}"
        WEFT_SERVICE  = "frontend"
        WEFT_INSTANCE = "${NOMAD_ALLOC_ID}/frontend"
        UPSTREAM_API  = "http://127.0.0.1:${NOMAD_PORT_upstream_api}"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
