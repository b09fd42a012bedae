job "bad" {
  weft {} # ERROR: weft block outside a group
  group "one" {
    network {
      port "app" {}
    }
    weft {
      service = "One_Service" # ERROR: Invalid service name
      colour  = "blue" # ERROR: Unsupported argument
      upstream "db" {
        local_port = 70000 # ERROR: Out of range
      }
      sidecar {
        controller = "127.0.0.1:7400" # ERROR: Wrong type
        driver     = "docker" # ERROR: Unsupported driver
      }
    }
  }
  group "two" {
    network {
      port "http" {}
    }
    weft {
      port = "app" # ERROR: No such port
      sidecar {
        controller   = ["127.0.0.1:7400"]
        trust_bundle = "/etc/weft/ca.crt"
      }
    }
  }
}
