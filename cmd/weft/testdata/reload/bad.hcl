mesh {
  trust_domain   = "bad.test"
  default_action = "maybe"
}
