# The api in node mode: the node proxy of each allocation's node serves it
# (no sidecar task), with host networking; it calls store.
job "api" {
  datacenters = ["dc1"]

  group "api" {
    count = 2

    network {
      port "app" {}
    }

    weft {
      proxy_mode = "node"

      upstream "store" {}
    }

    task "app" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/api"
        args    = ["--listen", "${NOMAD_ADDR_app}", "--store", "http://${NOMAD_ADDR_upstream_store}"]
      }
    }
  }
}
