service "db" {}
service "api" {
  protocol = "http"
  route "a" {
    match {
      path = "/a"
    }
    mirror "api" { # ERROR: Mirror to itself
      percent = 0 # ERROR: Invalid percentage
    }
    mirror "db" { # ERROR: Duplicate mirror block
    }
  }
  route "b" {
    match {
      path = "/b"
    }
    mirror "db" { # ERROR: Mirror to a TCP service
    }
  }
  route "c" {
    mirror "apii" { # ERROR: Unknown mirror service
    }
  }
}
