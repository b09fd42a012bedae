# Who may call whom. Under default deny, frontend -> store has no intention
# and is refused: `curl http://127.0.0.4:8080/call/store` (the frontend's
# address) shows the sidecar's 403.
intention "frontend" "api" {
  action = "allow"
}

intention "api" "store" {
  action = "allow"
}
