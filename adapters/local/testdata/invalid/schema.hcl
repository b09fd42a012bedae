service "api" { # ERROR: Missing required argument
  comand = "./app" # ERROR: Unsupported argument
  port   = 8080
}

service "web" { # ERROR: Missing required argument
  command = "./web"
}

service "store" { # ERROR: Missing required argument
  port = 9000
}

job "batch" { # ERROR: Unsupported block type
}

service { # ERROR: Missing name for service
  command = "./x"
  port    = 1
}
