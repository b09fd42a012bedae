service "tcpsvc" {
  route "r" { # ERROR: Route on a TCP service
  }
}

service "api" {
  protocol = "http"
  subset "v1" {
    meta = { version = "v1" }
  }
  subset "v1" { # ERROR: Duplicate subset
    meta = { version = "v1" }
  }
  subset "empty" { # ERROR: Empty subset
  }
  subset "Bad_Name" { # ERROR: Invalid subset name
    tags = ["x"]
  }

  route "Not A Label" { # ERROR: Invalid route name
    match {
      path = "/a"
    }
  }
  route "splits" {
    match {
      path = "/b"
    }
    split "v1" { # ERROR: Weights do not add up to 100
      weight = 50
    }
    split "v3" { # ERROR: Unknown subset
      weight = 20
    }
  }
  route "dup-split" {
    match {
      path = "/c"
    }
    split "v1" {
      weight = 50
    }
    split "v1" { # ERROR: Duplicate split
      weight = 50
    }
    split "v2" { # ERROR: Unknown subset
      weight = 101 # ERROR: Invalid weight
    }
  }
  route "dup-split" { # ERROR: Duplicate route
    match {
      path = "/d"
    }
    timeouts {
      request = "1s"
    }
    timeouts { # ERROR: Duplicate timeouts block
    }
    retry {
      per_try_timeout = "1s" # ERROR: Per-try timeout not below request timeout
    }
  }
  route "all" {
  }
  route "after-all" { # ERROR: Unreachable route
  }
}
