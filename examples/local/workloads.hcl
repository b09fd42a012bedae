# The demo mesh for the local adapter: a frontend that calls an api that
# calls a store. Run it with
#
#   make && bin/weft controller --policy-dir examples/local/policy \
#     --adapter local=examples/local/workloads.hcl
#
# Every instance gets a loopback address of its own (127.0.0.2, 127.0.0.3,
# ...), so all of them can use port 8080. An app reaches its upstreams
# through its sidecar, which listens on the instance's own address at the
# upstream's local_port (see policy/): hence ${HOST} in the UPSTREAM_* URLs,
# which the adapter expands per instance. Commands resolve against this
# file's directory.
#
# Run as root (with nft installed), the adapter guards every instance: only
# its sidecar reaches its app port, only its app its outbound ports
# (9001/9002 here); any other local process gets "connection refused".
# demo.sh passes --adapter-option local.edge=frontend so that you can curl
# the frontend's app; `weft status` shows each instance's ISOLATION and
# `weft check` probes them. Not root: no guard, and the controller says so.

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
  command   = "../../bin/weft-demo-app"
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
  command = "../../bin/weft-demo-app"
  port    = 8080
  meta    = { version = "v1" }
  tags    = ["demo"]
}
