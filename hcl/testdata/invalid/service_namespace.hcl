service "api" {
  namespace = "Shop" # ERROR: Invalid namespace
}

service "web" {
  namespace = "shop.eu" # ERROR: Invalid namespace
}

service "db" {
  namespace = upper("shop") # ERROR: Function calls not allowed
}
