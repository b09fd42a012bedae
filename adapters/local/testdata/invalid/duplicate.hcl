service "api" {
  command = "./app"
  port    = 8080
}

service "web" {
  command = "./web"
  port    = 8081
}

service "api" { # ERROR: Duplicate service
  command = "./other"
  port    = 8082
}
