service "api" {
  protocol = "https" # ERROR: Invalid protocol
}

service "web" {
  protocol = "HTTP" # ERROR: Invalid protocol
}

service "db" {
  protocol = { name = "tcp" } # ERROR: Incorrect attribute value type
}
