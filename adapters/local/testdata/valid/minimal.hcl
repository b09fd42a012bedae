service "api" {
  command = "./app"
  port    = 8080
}
