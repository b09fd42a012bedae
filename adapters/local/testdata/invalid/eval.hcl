# Expressions that repeat their body per element are refused before they
# are evaluated: nested, a few lines of them ask for billions of values.
service "a" {
  command = "./app"
  port    = 8080
  meta    = { for k in ["a", "b"] : k => k } # ERROR: For expressions not allowed
}

service "b" {
  command = "./app"
  port    = 8080
  env     = { X = "%{for i in [1, 2, 3]}${i}%{endfor}" } # ERROR: Template for directives not allowed
}

service "c" {
  command = "./app"
  port    = 8080
  args    = ["%{for i in [1, 2]}%{for j in [1, 2]}x%{endfor}%{endfor}"] # ERROR: Template for directives not allowed
}

service "d" {
  command   = "./app"
  port      = 8080
  instances = 1e999999999 # ERROR: Invalid instance count
}
