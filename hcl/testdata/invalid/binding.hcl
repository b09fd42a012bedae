service "catalog" {
  namespace = "shop"

  binding "nomda" { # ERROR: Unknown binding scheduler
    job = "catalog"
  }
  binding "nomad" { # ERROR: Missing required argument
    job = "catalog"
  }
  binding "nomad" {
    namespace = "shop"
    job       = "cat*" # ERROR: Wildcard in a binding
  }
  binding "nomad" {
    namespace = "*" # ERROR: Wildcard in a binding
    job       = "catalog"
  }
  binding "nomad" {
    namespace = "shop"
    job       = "catalog"
    group     = "web*" # ERROR: Wildcard in a binding
  }
  binding "nomad" {
    namespace = "shop"
    job       = ""  # ERROR: Empty binding attribute
  }
  binding "nomad" {
    namespace = "shop"
    job       = "catalog"
    service   = "catalog" # ERROR: Unsupported argument
  }
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "*" # ERROR: Wildcard in a binding
  }
  binding "kubernetes" {
    namespace       = "shop"
    service_account = ["catalog"] # ERROR: Incorrect attribute value type
  }
  binding "mesos" {} # ERROR: Empty binding
  binding "local" {
    name = "catalog"
  }
  binding "local" { # ERROR: Duplicate binding
    name = "catalog"
  }
  binding { # ERROR: Missing scheduler for binding
    name = "catalog"
  }
}
