# The frontend, with the weft stanza. Its app listens on the static port
# 8080 of the host, so you can call it; it reaches the api through its
# sidecar at NOMAD_ADDR_upstream_api.
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
      upstream "api" {}
    }

    task "app" {
      driver = "raw_exec"

      config {
        command = "${var.weft_bin}/weft-demo-app"
      }

      env {
        HOST          = "${NOMAD_IP_app}"
        PORT          = "${NOMAD_PORT_app}"
        WEFT_SERVICE  = "frontend"
        WEFT_INSTANCE = "${NOMAD_ALLOC_ID}/frontend"
        UPSTREAM_API  = "http://${NOMAD_ADDR_upstream_api}"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
