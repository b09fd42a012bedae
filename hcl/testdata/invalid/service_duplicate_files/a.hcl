service "api" {}

service "store" {}
