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
  group "three" {
    network {
      mode = "host" # ERROR: Network mode conflicts with the weft block
      port "app" {
        static = 8080 # ERROR: Static port on the app
      }
    }
    weft {
      sidecar {
        controller   = ["127.0.0.1:7400"]
        trust_bundle = "/etc/weft/ca.crt"
      }
    }
  }
  group "four" {
    network {
      port "app" {}
    }
    weft {
      network_mode = "none" # ERROR: Unsupported network_mode
    }
  }
  group "five" {
    network {
      port "app" {}
    }
    weft {
      network_mode = "host"
      app_port     = 9090 # ERROR: app_port needs bridge networking
    }
  }
  group "six" {
    network {
      port "app" {
        to = 15001 # ERROR: App port taken
      }
    }
    weft {
      sidecar {
        controller   = ["127.0.0.1:7400"]
        trust_bundle = "/etc/weft/ca.crt"
      }
    }
  }
  group "seven" {
    network {
      port "app" {
        to = 9090
      }
    }
    weft {
      app_port = 9091 # ERROR: Two app ports
      sidecar {
        controller   = ["127.0.0.1:7400"]
        trust_bundle = "/etc/weft/ca.crt"
      }
    }
  }
  group "eight" {
    network {
      port "app" {}
    }
    weft {
      upstream "db" {} # ERROR: Upstream needs a local_port
    }
  }
  group "nine" {
    network {
      port "app" {}
    }
    weft {
      proxy_mode   = "node"
      network_mode = "bridge" # ERROR: Node mode needs host networking
      sidecar { # ERROR: No sidecar in node mode
        memory = 32
      }
    }
  }
  group "ten" {
    network {
      port "app" {}
    }
    weft {
      proxy_mode = "application" # ERROR: Unsupported proxy_mode
    }
  }
  group "eleven" {
    network {
      port "app" {}
    }
    service {
      name = "eleven"
      port = "app"
      tags = ["v1"] # ERROR: Service tag needed
    }
    weft {
      proxy_mode = "node"
    }
  }
}
