mesh {
  trust_domain   = "prod.example.com"
  default_action = "allow"
}
