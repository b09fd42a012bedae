service "a" {
  command = "./app"
  port    = 8080 8081 # ERROR: Missing newline after argument
}
