service "a" {
  command = "./app"
  port    = 8080
  args    = "--name a" # ERROR: Invalid args
}

service "b" {
  command = "./app"
  port    = 8080
  args    = ["--listen", "${HOST}:${PORTS}"] # ERROR: Unknown variable
}

service "c" {
  command = "./app-${HOST}" # ERROR: Variables not allowed
  port    = 8080
}
