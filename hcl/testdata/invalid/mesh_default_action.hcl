mesh {
  default_action = "permit" # ERROR: Invalid default action
}
