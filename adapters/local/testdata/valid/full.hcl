# Every attribute of a service block.
service "store" {
  command   = "/usr/bin/env"
  args      = ["--name", "${WEFT_SERVICE}", "--listen", "${HOST}:${PORT}"]
  env       = { STORE_DIR = "/tmp/${WEFT_INSTANCE}", MODE = "fast", LITERAL = "$${HOST}" }
  instances = 3
  port      = 9000
  namespace = "shop"
  meta      = { version = "v2", zone = "a" }
  tags      = ["demo", "db"]
}

service "frontend" {
  command = "bin/frontend"
  port    = 8080
}
