intention "frontend" "api" {
  action = "allow"
}

intention "api" "store" {
  action = "allow"
}
