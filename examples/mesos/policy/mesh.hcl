# The mesh of the Mesos example: a frontend that calls an api. Under
# default deny, only the intention below lets the call through.
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}

service "frontend" {
  protocol = "http"

  # The frontend's sidecar listens for the api on the frontend's own
  # address (the task group's), port 9001: UPSTREAM_API in ../apps.json.
  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"
}

intention "frontend" "api" {
  action = "allow"
}
