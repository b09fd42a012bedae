# The ingress gateway as a Nomad job: weft-proxy is the group's only task
# (no app, no prestart sidecar), joins with the task's workload identity,
# and --gateway public makes it refuse any configuration that is not the
# gateway's. The nomad adapter finds the instance like any other: a native
# service registration (public-gateway) in a group whose network has a
# port labelled mesh. The gateway binds its listeners (policy/gateway.hcl:
# 8443 and 8080) on the host address Nomad gave the mesh port, so the
# group reserves them as static ports.
#
#   nomad job run -var weft_bin=$PWD/bin examples/gateway/gateway.nomad.hcl
variable "weft_bin" {
  description = "directory holding weft-proxy on the client"
}

variable "controller" {
  default = "127.0.0.1:7410"
}

variable "trust_bundle" {
  default = "/tmp/weft-nomad-demo/ca/ca.crt"
}

job "public-gateway" {
  group "gateway" {
    count = 2

    network {
      port "mesh" {}
      port "admin" {}
      port "https" {
        static = 8443
      }
      port "http" {
        static = 8080
      }
    }

    service {
      name     = "public-gateway"
      provider = "nomad"
      port     = "https"

      check {
        type     = "tcp"
        port     = "https"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "weft-proxy" {
      driver = "raw_exec"

      identity {
        env = true
      }

      config {
        command = "${var.weft_bin}/weft-proxy"
        args = [
          "--gateway", "public",
          "--instance", "${NOMAD_ALLOC_ID}/public-gateway",
          "--controller", var.controller,
          "--trust-bundle", var.trust_bundle,
          "--admin", "${NOMAD_ADDR_admin}",
          "--credential-adapter", "nomad",
          "--credential-env", "NOMAD_TOKEN",
        ]
      }

      kill_timeout = "10s"

      resources {
        cpu    = 200
        memory = 64
      }
    }
  }
}
