service "api" {}
service "store" {}

intention "api" "store" {
  action = "allow"
}

intention "api" "store" { # ERROR: Duplicate intention
  action = "deny"
}

intention "*" "*" {
  action = "deny"
}

intention "*" "*" { # ERROR: Duplicate intention
  action = "deny"
}
