# The mesh default covers every service that sets no proxy_mode of its own.
mesh {
  default_proxy_mode = "instance"
}

service "web" {
  proxy_mode = "node"
  binding "local" { name = "web" }
}

service "api" {
  proxy_mode = "application"
  binding "local" { name = "api" }
}

# store sets none: the mesh's "instance".
service "store" {
  binding "local" { name = "store" }
}
