service "web" {}
service "api" {
  protocol = "http"
}
service "db" {}

intention "web" "api" {
  action = "allow" # ERROR: Action and permissions
  permission {
    action = "allow"
  }
}

intention "web" "db" {
  permission { # ERROR: Permissions for a TCP service
    action = "allow"
  }
}

intention "db" "*" { # ERROR: Permissions for every destination
  permission {
    action = "maybe" # ERROR: Invalid action
    match {
      methods = ["GET"]
    }
    match { # ERROR: Duplicate match block
    }
  }
}

intention "api" "api" { # ERROR: Missing required argument
}

intention "db" "api" {
  permission {
    action = "allow"
    match {
      grpc_service = "x.Y" # ERROR: gRPC match on a non-gRPC service
    }
  }
}
