# frontend -> api -> store. On Nomad, each upstream's listener port is the
# one Nomad allocated for the port labelled upstream_<name> in the
# caller's group, so local_port here only matters to callers without one.
service "frontend" {
  protocol = "http"
  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"
  upstream "store" {
    local_port = 9002
  }
}

service "store" {
  protocol = "http"
}
