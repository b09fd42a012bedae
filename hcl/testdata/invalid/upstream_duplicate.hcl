service "store" {}

service "api" {
  upstream "store" {
    local_port = 9101
  }

  upstream "store" { # ERROR: Duplicate upstream
    local_port = 9102
  }
}
