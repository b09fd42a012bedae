# Three Weft controllers as one Nomad job: raft replicas (issue 17) that
# share the CA, the spent join tokens and the serving of sidecars. One
# replica per client node (distinct_hosts), each on the node's address
# with fixed ports, its raft log and sealed CA state on a host volume that
# outlives the allocation. See docs/operations-raft.md.
#
# Before running it:
#
#   - on each of the three client nodes, a host volume (client stanza of
#     the agent's configuration):
#
#       host_volume "weft-controller" {
#         path      = "/var/lib/weft-controller"
#         read_only = false
#       }
#
#   - the state key that seals the CA in the replicated state, and the
#     nomad adapter's ACL token, in the job's variable (only this job can
#     read it):
#
#       head -c 32 /dev/urandom | base64 > state.key
#       nomad var put nomad/jobs/weft-controller-ha \
#         state_key=@state.key token=$NOMAD_TOKEN
#
#   - weft and weft-proxy in var.weft_bin, and the policy in
#     var.policy_dir, on each node.
#
#   nomad job run -var 'servers=["10.0.0.1","10.0.0.2","10.0.0.3"]' controller-ha.nomad.hcl
#
# Sidecars then take every replica: weft-proxy --controller
# 10.0.0.1:7400,10.0.0.2:7400,10.0.0.3:7400 (or a DNS name that resolves
# to the three), and `weft nomad run --controller ...` likewise.
#
# Each replica runs its own nomad adapter: all three learn the
# allocations from Nomad, verify workload identities and serve any
# sidecar. test/nomad's TestNomadRaftFailoverUnderTraffic runs this
# task's arguments as three processes and SIGKILLs the leader under
# traffic: no call fails, and the sidecars move to the survivors.
variable "servers" {
  type        = list(string)
  description = "the addresses (IPs or DNS names) of the three client nodes the replicas run on"
}

variable "weft_bin" {
  default     = "/usr/local/bin"
  description = "directory holding weft and weft-proxy on the clients"
}

variable "policy_dir" {
  default     = "/etc/weft/policy"
  description = "directory of the policy files on the clients (the same files on every one)"
}

variable "nomad_addr" {
  default = "http://127.0.0.1:4646"
}

variable "distinct_hosts" {
  type        = bool
  default     = true
  description = "one replica per node; false only to try the job on a single node"
}

job "weft-controller-ha" {
  type = "service"

  group "controller" {
    count = 3

    dynamic "constraint" {
      for_each = var.distinct_hosts ? [1] : []
      content {
        operator = "distinct_hosts"
        value    = "true"
      }
    }

    # Replace one replica at a time, and only once the one before is
    # healthy again: two of three are a quorum (docs/operations-raft.md,
    # "Upgrading").
    update {
      max_parallel     = 1
      min_healthy_time = "30s"
      healthy_deadline = "5m"
      health_check     = "checks"
    }

    # A replica that dies comes back on the same node, with its volume.
    restart {
      attempts = 10
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    reschedule {
      unlimited      = true
      delay          = "1m"
      delay_function = "exponential"
      max_delay      = "10m"
    }

    volume "data" {
      type      = "host"
      source    = "weft-controller"
      read_only = false
    }

    network {
      port "sidecar" {
        static = 7400
      }
      port "admin" {
        static = 7401
      }
      port "raft" {
        static = 7402
      }
    }

    service {
      provider = "nomad"
      name     = "weft-controller"
      port     = "sidecar"

      # The admin API's health endpoint needs no token (issue 17 part 4).
      check {
        name     = "ready"
        type     = "http"
        protocol = "https"
        port     = "admin"
        path     = "/v1/health/ready"
        interval = "10s"
        timeout  = "3s"

        tls_skip_verify = true # the mesh CA signs the controller's certificate
      }
    }

    task "controller" {
      driver = "raw_exec"

      volume_mount {
        volume      = "data"
        destination = "/var/lib/weft-controller"
      }

      config {
        command = "${var.weft_bin}/weft"
        args = concat([
          "controller",
          "--policy-dir", var.policy_dir,
          "--data-dir", "/var/lib/weft-controller/data",
          "--raft-dir", "/var/lib/weft-controller/raft",
          "--listen", "${NOMAD_ADDR_sidecar}",
          "--admin", "${NOMAD_ADDR_admin}",
          "--raft-addr", "${NOMAD_ADDR_raft}",
          "--state-key-file", "${NOMAD_SECRETS_DIR}/state.key",
          "--bootstrap-expect", "3",
          "--proxy-binary", "${var.weft_bin}/weft-proxy",
          "--adapter", "nomad=${var.nomad_addr}",
          "--sidecar-controller", join(",", [for s in var.servers : "${s}:7400"]),
          ], flatten([for s in var.servers : ["--join", "${s}:7402"]])
        )
      }

      # The state key, readable by the task's user only.
      template {
        data        = "{{ with nomadVar \"nomad/jobs/weft-controller-ha\" }}{{ .state_key }}{{ end }}"
        destination = "secrets/state.key"
        perms       = "400"
        change_mode = "noop" # a new key needs every replica restarted with it, by hand
      }

      template {
        data        = "NOMAD_TOKEN={{ with nomadVar \"nomad/jobs/weft-controller-ha\" }}{{ .token }}{{ end }}"
        destination = "secrets/nomad.env"
        env         = true
      }

      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
