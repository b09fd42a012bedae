mesh "main" { # ERROR: Extraneous label for mesh
}

mesh {
  trust_domain = ["weft.local"] # ERROR: Incorrect attribute value type
  default_action = var.action # ERROR: Variables not allowed
  ca_ttl = "24h" # ERROR: Unsupported argument

  ca { # ERROR: Unsupported block type
  }
}
