service "a" {}
service "b" {}
service "c" {}
service "d" {}
service "e" {}

service "api" {
  upstream "a" {
    local_port = 0 # ERROR: Invalid local port
  }

  upstream "b" {
    local_port = 65536 # ERROR: Invalid local port
  }

  upstream "c" {
    local_port = 80.5 # ERROR: Invalid local port
  }

  upstream "d" {
    local_port = "http" # ERROR: Incorrect attribute value type
  }

  upstream "e" { # ERROR: Missing required argument
    lb = "round_robin"
  }
}

service "web" {
  upstream "a" {
    local_port = null # ERROR: Missing required argument
  }

  upstream "b" {
    local_port = -1 # ERROR: Invalid local port
  }
}
