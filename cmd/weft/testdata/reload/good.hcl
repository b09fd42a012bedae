mesh {
  trust_domain   = "good.test"
  default_action = "deny"
}
