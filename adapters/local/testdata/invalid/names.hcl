service "API" { # ERROR: Invalid service name
  command = "./app"
  port    = 8080
}

service "my_svc" { # ERROR: Invalid service name
  command = "./app"
  port    = 8080
}

service "-api" { # ERROR: Invalid service name
  command = "./app"
  port    = 8080
}

service "ok" {
  command   = "./app"
  port      = 8080
  namespace = "Prod" # ERROR: Invalid namespace
}

service "empty" {
  command = "  " # ERROR: Empty command
  port    = 8080
}

service "nocmd" {
  command = null # ERROR: Missing value
  port    = 8080
}

service "claims" {
  command = "./app"
  port    = 8080
  service = "Store" # ERROR: Invalid service name
}

service "claims-too" {
  command = "./app"
  port    = 8080
  service = "" # ERROR: Invalid service name
}
