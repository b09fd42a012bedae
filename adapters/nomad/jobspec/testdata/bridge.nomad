# A job with the weft stanza and the default, bridge networking: the api
# calls store and db on the allocation's loopback, only the sidecar's mesh
# port is published.
job "api" {
  datacenters = ["dc1"]

  group "api" {
    count = 2

    network {
      port "http" {
        to = 9090
      }
    }

    weft {
      port = "http"

      upstream "store" {
        local_port = 9002
      }
      upstream "user-db" {
        local_port = 9003
      }

      sidecar {
        command      = "/usr/local/bin/weft-proxy"
        controller   = ["127.0.0.1:7400"]
        trust_bundle = "/etc/weft/ca.crt"
      }
    }

    task "app" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/api"
        args    = ["--listen", "${NOMAD_ADDR_http}", "--store", "http://${NOMAD_ADDR_upstream_store}"]
      }
      env {
        LOG = "info"
      }
    }

    task "log-shipper" {
      driver = "raw_exec"
      config {
        command = "/usr/local/bin/ship"
      }
    }
  }
}
