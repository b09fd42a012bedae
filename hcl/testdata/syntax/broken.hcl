service "api" {
  protocol = "http"
}

service "store" {
  protocol =
}
