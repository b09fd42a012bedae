mesh {
  default_action = "deny"
}

mesh { # ERROR: Duplicate mesh block
  default_action = "allow"
}
