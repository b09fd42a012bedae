service "db" {}
service "api" {
  protocol = "http"
}

service "web" {
  upstream "api" {
    local_port = 9100
    lb         = "ring_hash" # ERROR: Missing hash block
  }
  upstream "db" {
    local_port = 9101
    lb         = "maglev"
    hash { # ERROR: Request hash on a TCP upstream
      header = "x-user"
    }
  }
}

service "web2" {
  upstream "api" {
    local_port = 9100
    hash { # ERROR: Hash without consistent hashing
      source_identity = true
    }
  }
  upstream "db" {
    local_port = 9101
    lb         = "ring_hash"
    hash { # ERROR: Hash needs one key # ERROR: Request hash on a TCP upstream
      source_identity = true
      cookie          = "s"
    }
    hash { # ERROR: Duplicate hash block
      header = "bad name"
    }
  }
}
