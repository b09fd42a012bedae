# The Weft controller as a Nomad job. It runs the nomad adapter against
# this Nomad, with the ACL token kept in the Nomad variable
# nomad/jobs/weft-controller (key token), which only this job can read.
variable "weft_bin" {
  description = "directory holding weft and weft-proxy on the client"
}

variable "policy_dir" {
  description = "directory of the policy files on the client"
}

variable "data_dir" {
  default = "/tmp/weft-nomad-demo"
}

variable "nomad_addr" {
  default = "http://127.0.0.1:4646"
}

variable "listen" {
  default = "127.0.0.1:7410"
}

variable "admin" {
  default = "127.0.0.1:7411"
}

job "weft-controller" {
  group "controller" {
    task "controller" {
      driver = "raw_exec"

      config {
        command = "${var.weft_bin}/weft"
        args = [
          "controller",
          "--policy-dir", var.policy_dir,
          "--data-dir", var.data_dir,
          "--listen", var.listen,
          "--admin", var.admin,
          "--proxy-binary", "${var.weft_bin}/weft-proxy",
          "--adapter", "nomad=${var.nomad_addr}",
        ]
      }

      template {
        data        = "NOMAD_TOKEN={{ with nomadVar \"nomad/jobs/weft-controller\" }}{{ .token }}{{ end }}"
        destination = "secrets/nomad.env"
        env         = true
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
