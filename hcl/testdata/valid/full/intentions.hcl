intention "default/frontend" "api" {
  action = "allow"
}

intention "*" "auth" {
  action = "allow"
}

# The frontend must never reach the store directly.
intention "frontend" "store" {
  action = "deny"
}

intention "*" "*" {
  action = "deny"
}

intention "shop/api" "auth" {
  action = "allow"
}
