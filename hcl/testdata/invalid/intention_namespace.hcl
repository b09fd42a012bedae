service "api" {
  namespace = "shop"
  binding "local" { name = "api" }
}
service "web" {
  binding "local" { name = "web" }
}

intention "web" "api" { # ERROR: Intention source in another namespace
  action = "allow"
}

intention "shop/web" "api" { # ERROR: Intention source in another namespace # ERROR: Duplicate intention
  action = "allow"
}

intention "*/web" "api" { # ERROR: Invalid intention source
  action = "allow"
}

intention "Shop/web" "api" { # ERROR: Invalid intention source
  action = "allow"
}

intention "a/b/web" "api" { # ERROR: Invalid intention source
  action = "allow"
}

intention "default/web" "shop/api" { # ERROR: Invalid intention destination
  action = "allow"
}

intention "default/web" "api" {
  action = "allow"
}

intention "web" "api" { # ERROR: Intention source in another namespace # ERROR: Duplicate intention
  action = "deny"
}

intention "/web" "api" { # ERROR: Invalid intention source
  action = "allow"
}
