mesh {
  trust_domain   = "fixed.test"
  default_action = "allow"
}
