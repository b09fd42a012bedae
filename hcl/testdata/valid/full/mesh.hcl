mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}
