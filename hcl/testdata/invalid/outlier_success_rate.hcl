service "api" {
  binding "local" { name = "api" }
  outlier_detection {
    success_rate {
      minimum_hosts  = 1 # ERROR: Invalid count
      request_volume = 0 # ERROR: Invalid count
      stdev_factor   = 1900 # ERROR: Invalid standard deviation factor
      stdev_floor    = 1 # ERROR: Unsupported argument
    }
    success_rate { # ERROR: Duplicate success_rate block
    }
  }
}

service "cart" {
  binding "local" { name = "cart" }
  outlier_detection {
    success_rate {
      minimum_hosts  = 1001 # ERROR: Invalid count
      request_volume = 2.5 # ERROR: Invalid count
      stdev_factor   = 0 # ERROR: Invalid standard deviation factor
    }
    success_rate "x" { # ERROR: Extraneous label for success_rate
    }
  }
}
