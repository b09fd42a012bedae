service "api" {}
service "store" {}

intention "api" "store" {
  action = "permit" # ERROR: Invalid action
}

intention "store" "api" { # ERROR: Missing required argument
}

intention "*" "store" {
  action = true # ERROR: Invalid action
}

intention "*" "api" {
  action = null # ERROR: Missing required argument
}

intention "api" { # ERROR: Missing destination for intention
  action = "allow"
}

intention "api" "api" {
  action = "allow"
  comment = "self" # ERROR: Unsupported argument
}
