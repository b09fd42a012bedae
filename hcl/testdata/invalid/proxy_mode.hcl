mesh {
  default_proxy_mode = "per-node" # ERROR: Invalid proxy mode
}

service "web" {
  proxy_mode = "sidecar" # ERROR: Invalid proxy mode
}

service "api" {
  proxy_mode = "nodes" # ERROR: Invalid proxy mode
}

service "store" {
  proxy_mode = ["node"] # ERROR: Incorrect attribute value type
}
