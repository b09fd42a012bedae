# frontend -> api -> store. On Nomad, each upstream's listener port is the
# one Nomad allocated for the port labelled upstream_<name> in the
# caller's group, so local_port here only matters to callers without one.
# Each binding names the Nomad job (and namespace) allowed to serve its
# service: another job that registers the same service name gets no
# certificate and none of its callers' traffic.

service "frontend" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "frontend"
  }
  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "api"
  }
  upstream "store" {
    local_port = 9002
  }
}

service "store" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "store"
  }
}
