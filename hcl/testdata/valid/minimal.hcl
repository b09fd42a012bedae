# One service and nothing else: every default applies.
service "api" {
  binding "local" { name = "api" }
}
