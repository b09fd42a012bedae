mesh {
  identity_binding = "lax" # ERROR: Invalid identity binding
}
