# Blocks may be spread across files in any way.
service "store" {
  protocol = "tcp"

  binding "kubernetes" {
    namespace       = "default"
    service_account = "store"
  }
}

service "auth" {
  protocol = "http2"

  binding "mesos" { principal = "auth" }
  binding "local" { name = "auth" }
}

# api runs in namespace "shop": a source without a namespace would name a
# caller in the destination's namespace.
intention "shop/api" "store" {
  action = "allow"
}
