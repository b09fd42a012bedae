# The mesh of the Nomad example: default deny, so no call passes without
# an intention.
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}
