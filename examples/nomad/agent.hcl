# A Nomad dev agent for the walkthrough in README.md: ACLs on (workload
# identities prove nothing without them), the raw_exec driver, so that
# tasks run binaries on the host, and the CNI plugins of Debian's
# containernetworking-plugins for bridge networking (README.md, "Bridge
# networking").
acl {
  enabled = true
}

client {
  cni_path = "/usr/lib/cni"
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}
