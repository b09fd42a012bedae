service "API" { # ERROR: Invalid service name
}

service "my_api" { # ERROR: Invalid service name
}

service "-api" { # ERROR: Invalid service name
}

service "" { # ERROR: Invalid service name
}

service "*" { # ERROR: Invalid service name
}

service { # ERROR: Missing name for service
}

service "a" "b" { # ERROR: Extraneous label for service
}
