# The store, written with the weft stanza: `weft nomad run` (or
# `weft nomad render`) expands the weft block into the sidecar task, the
# mesh ports and the service.
variable "weft_bin" {
  description = "directory holding weft-demo-app on the client"
}

job "store" {
  group "store" {
    network {
      port "app" {}
    }

    weft {}

    task "app" {
      driver = "raw_exec"

      config {
        command = "${var.weft_bin}/weft-demo-app"
      }

      env {
        HOST          = "${NOMAD_IP_app}"
        PORT          = "${NOMAD_PORT_app}"
        WEFT_SERVICE  = "store"
        WEFT_INSTANCE = "${NOMAD_ALLOC_ID}/store"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
