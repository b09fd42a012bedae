# The mesh of the Mesos example: a frontend that calls an api. Under
# default deny, only the intention below lets the call through.
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
}

service "frontend" {
  protocol = "http"

  # Only tasks of the example framework may serve frontend. framework_name is
  # what the framework registers with; where frameworks authenticate,
  # bind the principal instead: binding "mesos" { principal = "..." }.
  binding "mesos" { framework_name = "weft-example" }

  # The frontend's sidecar listens for the api on the frontend's own
  # address (the task group's), port 9001: UPSTREAM_API in ../apps.json.
  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"

  # Only tasks of the example framework may serve api. framework_name is
  # what the framework registers with; where frameworks authenticate,
  # bind the principal instead: binding "mesos" { principal = "..." }.
  binding "mesos" { framework_name = "weft-example" }
}

intention "frontend" "api" {
  action = "allow"
}
