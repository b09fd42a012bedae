# A replicated store whose replicas call each other through the mesh.
service "store" {
  binding "local" { name = "store" }
  protocol = "grpc"

  upstream "store" {
    local_port = 7000
  }
}

intention "store" "store" {
  action = "allow"
}
