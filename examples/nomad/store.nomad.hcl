# The store, written with the weft stanza: `weft nomad run` (or
# `weft nomad render`) expands the weft block into the sidecar task, the
# mesh ports and the service. Host networking (network_mode = "host"),
# because the walkthrough's dev agent is bound to loopback: see "Bridge
# networking" in README.md for the default, and why.
variable "weft_bin" {
  description = "directory holding weft-demo-app on the client"
}

job "store" {
  group "store" {
    network {
      port "app" {}
    }

    weft {
      network_mode = "host"
    }

    task "app" {
      driver = "raw_exec"

      config {
        command = "${var.weft_bin}/weft-demo-app"
      }

      env {
        HOST          = "127.0.0.1"
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
