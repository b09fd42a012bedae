service "api" {}
service "store" {}

intention "frontend" "api" { # ERROR: Unknown intention source
  action = "allow"
}

intention "api" "stor" { # ERROR: Unknown intention destination
  action = "allow"
}

intention "*" "db" { # ERROR: Unknown intention destination
  action = "deny"
}

intention "web" "*" { # ERROR: Unknown intention source
  action = "deny"
}
