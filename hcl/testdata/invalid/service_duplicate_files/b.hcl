service "store" { # ERROR: Duplicate service
  protocol = "tcp"
}
