# The demo mesh with the three deployment models side by side
# (docs/deployment-models.md): frontend keeps its sidecar; api's two
# instances share one proxy of their application (admitted for api's
# instances only); store is served by the node proxy. Each instance keeps
# its own identity, listeners and metrics
# (http://<instance address>:15000/metrics). Run it with
#
#   make && examples/local/demo.sh application
#
# Run as root with nft, the local adapter's guard covers all three: api's
# proxy reaches api's apps and no other app.

service "frontend" {
  command = "../../bin/weft-demo-app"
  port    = 8080
  env = {
    UPSTREAM_API   = "http://${HOST}:9001"
    UPSTREAM_STORE = "http://${HOST}:9002" # refused: no intention frontend -> store
  }
  meta = { version = "v1" }
  tags = ["demo"]
}

service "api" {
  command    = "../../bin/weft-demo-app"
  proxy_mode = "application" # one proxy for api's instances, and no other service's
  instances = 2
  port      = 8080
  env = {
    UPSTREAM_STORE = "http://${HOST}:9002"
  }
  meta = { version = "v1" }
  tags = ["demo"]
  # The adapter probes each instance's /healthz every second: an instance
  # whose check fails is critical and leaves every caller's endpoints
  # until it passes again. Try it on api-0 (127.0.0.2):
  # curl -X POST http://127.0.0.2:8080/healthz/fail, then .../healthz/pass,
  # and watch `weft status` (the guard refuses curl on an app port: add
  # api to --adapter-option local.edge to try this as root).
  check {
    http     = "/healthz"
    interval = "1s"
  }
}

service "store" {
  command    = "../../bin/weft-demo-app"
  proxy_mode = "node" # served by the node proxy
  port    = 8080
  meta    = { version = "v1" }
  tags    = ["demo"]
}
