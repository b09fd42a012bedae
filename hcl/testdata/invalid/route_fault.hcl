service "api" {
  protocol = "http"
  route "a" {
    match {
      path = "/a"
    }
    fault { # ERROR: Empty fault
    }
    fault { # ERROR: Duplicate fault block
      delay = "1s" # ERROR: Delay without percentage
    }
  }
  route "b" {
    match {
      path = "/b"
    }
    fault {
      delay_percent = 10 # ERROR: Delay percentage without delay
      abort_status  = 200 # ERROR: Invalid abort status
      abort_percent = 101 # ERROR: Invalid percentage
      callers       = ["nobody"] # ERROR: Unknown caller
    }
  }
  route "c" {
    fault {
      abort_status = 503 # ERROR: Abort without percentage
    }
  }
}
