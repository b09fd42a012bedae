# The mesh: its trust domain, and default deny, so that no call passes
# without an intention (see intentions.hcl).
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}
