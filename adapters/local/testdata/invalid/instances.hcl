service "a" {
  command   = "./app"
  port      = 8080
  instances = 0 # ERROR: Invalid instance count
}

service "b" {
  command   = "./app"
  port      = 8080
  instances = 101 # ERROR: Invalid instance count
}

service "c" {
  command   = "./app"
  port      = 8080
  instances = 2.5 # ERROR: Invalid instance count
}

service "d" {
  command   = "./app"
  port      = 8080
  instances = "two" # ERROR: Incorrect attribute value type
}

service "e" {
  command   = "./app"
  port      = 8080
  instances = null # ERROR: Invalid instance count
}
