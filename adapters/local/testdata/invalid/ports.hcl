service "a" {
  command = "./app"
  port    = 0 # ERROR: Invalid port
}

service "b" {
  command = "./app"
  port    = 70000 # ERROR: Invalid port
}

service "c" {
  command = "./app"
  port    = 15001 # ERROR: Port reserved for the sidecar
}

service "d" {
  command = "./app"
  port    = 15000 # ERROR: Port reserved for the sidecar
}

service "e" {
  command = "./app"
  port    = -1 # ERROR: Invalid port
}
