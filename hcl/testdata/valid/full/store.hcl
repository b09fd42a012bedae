# Blocks may be spread across files in any way.
service "store" {
  protocol = "tcp"
}

service "auth" {
  protocol = "http2"
}

intention "api" "store" {
  action = "allow"
}
