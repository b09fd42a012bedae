service "api" {
  protocol = "http"

  route "paths" {
    match {
      path        = "/a"
      path_prefix = "/b" # ERROR: Conflicting path matches
    }
    match {
      path = "relative" # ERROR: Invalid path
    }
    match {
      path_prefix = "/admin;jsessionid=1" # ERROR: Path parameters in a path match
    }
    match {
      path_regex = "/(unclosed" # ERROR: Invalid regular expression
    }
    match {
      methods = ["get", "FETCH"] # ERROR: Invalid method # ERROR: Invalid method
    }
    match {
      grpc_service = "shop.Cart" # ERROR: gRPC match on a non-gRPC service
    }
    match {
      grpc_method = "Get" # ERROR: gRPC method without service
    }
    match {
      header "x-a" { # ERROR: Missing value match
      }
      header "bad:name" { # ERROR: Invalid header name
        exact = "1"
      }
      header "x-b" {
        exact  = "1"
        prefix = "2" # ERROR: Conflicting value matches
      }
      header "x-c" {
        present = false # ERROR: Invalid present match
      }
      query "q" {
        regex = "a(" # ERROR: Invalid regular expression
      }
      query "r" {
        exact = "1"
        flag  = true # ERROR: Unsupported argument
      }
    }
  }
}

service "cart" {
  protocol = "grpc"
  route "g" {
    match {
      path         = "/x"
      grpc_service = "shop.Cart" # ERROR: Conflicting path matches
    }
    match {
      grpc_service = "shop/Cart" # ERROR: Invalid gRPC service
      grpc_method  = "a.b" # ERROR: Invalid gRPC method
    }
  }
}
