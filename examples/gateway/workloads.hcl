# The gateway example on the local adapter:
#
#   make && bin/weft controller --policy-dir examples/gateway/policy \
#     --adapter local=examples/gateway/workloads.hcl
#
# frontend gets 127.0.0.2, public-gateway 127.0.0.3 (the order of the
# blocks' labels). The gateway is an instance like any other: the adapter
# starts its weft-proxy with a join token, and the configuration makes it
# a gateway. The local adapter supervises an app for every instance; a
# gateway has none, so its "app" is a placeholder that only sleeps.

service "frontend" {
  command = "../../bin/weft-demo-app"
  port    = 8080
}

service "public-gateway" {
  command = "/bin/sleep"
  args    = ["infinity"]
  port    = 18080 # the placeholder listens nowhere; the gateway's ports are in the policy
}
