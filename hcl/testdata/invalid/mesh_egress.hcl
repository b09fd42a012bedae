mesh {
  egress = "sometimes" # ERROR: Invalid egress mode
}
