service "a" {
  command = "./app"
  port    = 8080
  check {
    http = "healthz" # ERROR: Invalid check path
  }
}

service "b" {
  command = "./app"
  port    = 8080
  check {
    http = "//other.host/healthz" # ERROR: Invalid check path
  }
}

service "c" {
  command = "./app"
  port    = 8080
  check {
    http = "/a b" # ERROR: Invalid check path
  }
}

service "d" {
  command = "./app"
  port    = 8080
  check { # ERROR: A check needs one kind
  }
}

service "e" {
  command = "./app"
  port    = 8080
  check { # ERROR: A check needs one kind
    http = "/healthz"
    tcp  = true
  }
}

service "f" {
  command = "./app"
  port    = 8080
  check { # ERROR: A check needs one kind
    tcp = false
  }
}

service "g" {
  command = "./app"
  port    = 8080
  check {
    tcp = "yes" # ERROR: Incorrect attribute value type
  }
}

service "h" {
  command = "./app"
  port    = 8080
  check {
    tcp      = true
    interval = "10ms" # ERROR: Invalid check interval
  }
}

service "i" {
  command = "./app"
  port    = 8080
  check {
    tcp      = true
    interval = "2h" # ERROR: Invalid check interval
  }
}

service "j" {
  command = "./app"
  port    = 8080
  check {
    tcp      = true
    interval = "soon" # ERROR: Invalid check interval
  }
}

service "k" {
  command = "./app"
  port    = 8080
  check {
    tcp      = true
    interval = "1s"
    timeout  = "2s" # ERROR: Invalid check timeout
  }
}

service "l" {
  command = "./app"
  port    = 8080
  check {
    tcp     = true
    timeout = "0s" # ERROR: Invalid check timeout
  }
}

service "m" {
  command = "./app"
  port    = 8080
  check {
    tcp = true
  }
  check { # ERROR: Duplicate check
    http = "/healthz"
  }
}

service "n" {
  command = "./app"
  port    = 8080
  check "named" { # ERROR: Extraneous label for check
    tcp = true
  }
}

service "o" {
  command = "./app"
  port    = 8080
  check {
    path = "/healthz" # ERROR: Unsupported argument
  }
}

service "p" {
  command = "./app"
  port    = 8080
  check {
    http = "/${HOST}" # ERROR: Variables not allowed
  }
}
