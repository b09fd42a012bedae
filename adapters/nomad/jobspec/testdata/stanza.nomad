# A job with the weft stanza: the api calls store and db. It opts out of
# bridge networking (network_mode = "host"): no isolation.
job "api" {
  datacenters = ["dc1"]

  group "api" {
    count = 2

    network {
      port "http" {}
    }

    weft {
      port         = "http"
      network_mode = "host"

      upstream "store" {}
      upstream "user-db" {
        local_port = 9003
      }

      sidecar {
        command      = "/usr/local/bin/weft-proxy"
        controller   = ["127.0.0.1:7400"]
        trust_bundle = "/etc/weft/ca.crt"
        memory       = 48
      }
    }

    task "app" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/api"
        args    = ["--listen", "${NOMAD_ADDR_http}", "--store", "http://${NOMAD_ADDR_upstream_store}"]
      }
    }
  }
}
