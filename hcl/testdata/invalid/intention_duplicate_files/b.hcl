intention "api" "store" { # ERROR: Duplicate intention
  action = "allow"
}
