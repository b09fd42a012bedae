# The node proxy (docs/deployment-models.md): a system job, so one
# weft-proxy runs on every client node, serving every meshed instance of
# that node that chose node mode (api-node.nomad.hcl) with that
# instance's own identity. It holds no token of its own making: it joins
# with its task's workload identity, which the controller accepts as a
# node proxy's only because this job is marked weft_proxy = "node" (job
# or group meta) and its allocation runs; it is then told, and given
# certificates for, the node-mode instances Nomad placed on its own node,
# and no others. It asks the controller for them every
# --discover-interval, and starts and stops instances without restarting.
#
# The node-mode instances must use host networking (Nomad's default): the
# node proxy binds each one's mesh port and upstream ports on the node,
# with SO_REUSEPORT (--reuse-port, on by default with --node), so that an
# upgrade can run the new version beside this one: a system job's update
# stops the old allocation before it places the new, so upgrade by
# running the new version as a second system job, waiting for its ready
# file on each node, then stopping this one (docs/deployment-models.md,
# "Upgrades and failure").
variable "weft_bin" {
  description = "directory holding weft-proxy on the client"
}

variable "controller" {
  default = "127.0.0.1:7410"
}

variable "trust_bundle" {
  default = "/tmp/weft-nomad-demo/ca/ca.crt"
}

job "weft-node-proxy" {
  type = "system"

  # The marker the controller requires of a node proxy's identity.
  meta {
    weft_proxy = "node"
  }

  group "proxy" {
    task "weft-proxy" {
      driver = "raw_exec"

      identity {
        env = true
      }

      config {
        command = "${var.weft_bin}/weft-proxy"
        args = [
          "--node", "${node.unique.name}",
          "--credential-adapter", "nomad",
          "--credential-env", "NOMAD_TOKEN",
          "--controller", var.controller,
          "--trust-bundle", var.trust_bundle,
          "--discover-interval", "1s",
          "--ready-file", "${NOMAD_TASK_DIR}/ready",
        ]
      }

      # More than the proxy's drain (5s): a stop closes its listeners at
      # once and lets open connections finish.
      kill_timeout = "10s"

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
