mesh {
  identity_binding = "strict"
}

service "api" { # ERROR: Service without binding
}

service "web" {
  binding "local" { name = "web" }
}

service "db" { # ERROR: Service without binding
  protocol = "tcp"
}
