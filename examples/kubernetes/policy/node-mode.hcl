# catalog runs in node mode (../node-mode.yaml): its pods are served by
# the node proxy of their node, with catalog's own identity. Policy does
# not see the difference: bindings and intentions are as for a sidecar.
service "catalog" {
  namespace = "shop-node"
  protocol  = "http"
  binding "kubernetes" {
    namespace       = "shop-node"
    service_account = "catalog"
  }

  upstream "store" {
    local_port = 9102
  }
}

intention "shop-node/catalog" "store" {
  action = "allow"
}
