service "api" {}
service "store" {}

intention "api" "store" {
  action = "allow"
}
