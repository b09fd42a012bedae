# Top level: only mesh, service and intention blocks.
trust_domain = "weft.local" # ERROR: Unsupported argument

route "api" { # ERROR: Unsupported block type
}

service "api" {}
