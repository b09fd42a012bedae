# A Nomad dev agent for the walkthrough in README.md: ACLs on (workload
# identities prove nothing without them) and the raw_exec driver, so that
# tasks run binaries on the host with host networking.
acl {
  enabled = true
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}
