service "a" {
  command = "./app"
  port    = 8080
  env = {
    PORT      = "9000" # ERROR: Reserved environment variable
    "1x"      = "y" # ERROR: Invalid environment variable name
    STORE_URL = "http://${HOST}:9002"
    STORE_URL = "again" # ERROR: Duplicate environment variable
    API_URL   = "http://${API_HOST}:9001" # ERROR: Unknown variable
    NOTHING   = null # ERROR: Null value
  }
}

service "b" {
  command = "./app"
  port    = 8080
  env     = ["A=1"] # ERROR: Invalid env
}

service "c" {
  command = "./app"
  port    = 8080
  meta    = { version = null } # ERROR: Null value
  tags    = "demo" # ERROR: Incorrect attribute value type
}
