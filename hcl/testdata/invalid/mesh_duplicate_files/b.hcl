service "api" {}

mesh { # ERROR: Duplicate mesh block
  trust_domain = "other.local"
}
