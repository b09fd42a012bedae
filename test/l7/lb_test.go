package l7

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func hashPolicy(lb, hash string) string {
	return fmt.Sprintf(`
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 1
    lb         = %q
    hash {
      %s
    }
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
}
intention "web" "api" {
  action = "allow"
}
`, lb, hash)
}

// TestConsistentHashing: every key stays on one instance across requests,
// and the keys use more than one instance.
func TestConsistentHashing(t *testing.T) {
	tests := []struct {
		lb, hash string
		key      func(string) http.Header
	}{
		{"ring_hash", `header = "x-user"`, func(k string) http.Header { return http.Header{"X-User": {k}} }},
		{"maglev", `cookie = "session"`, func(k string) http.Header { return http.Header{"Cookie": {"session=" + k}} }},
	}
	for _, tt := range tests {
		t.Run(tt.lb, func(t *testing.T) {
			m := start(t, hashPolicy(tt.lb, tt.hash), inst{id: "web-1", svc: "web"},
				inst{id: "api-1", svc: "api", app: named("api-1")},
				inst{id: "api-2", svc: "api", app: named("api-2")},
				inst{id: "api-3", svc: "api", app: named("api-3")})
			c := client(t)
			used := map[string]bool{}
			for k := range 30 {
				key := fmt.Sprint("user-", k)
				var home string
				for i := range 5 {
					code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/"), tt.key(key))
					if code != 200 {
						t.Fatalf("status %d %q", code, body)
					}
					if i == 0 {
						home = body
					} else if body != home {
						t.Fatalf("key %s went to %s, then to %s", key, home, body)
					}
				}
				used[home] = true
			}
			if len(used) < 2 {
				t.Errorf("30 keys all went to %v", used)
			}
		})
	}
}

func TestHashOnSourceIdentity(t *testing.T) {
	m := start(t, hashPolicy("ring_hash", "source_identity = true"),
		inst{id: "web-1", svc: "web"}, inst{id: "web-2", svc: "web"}, inst{id: "web-3", svc: "web"},
		inst{id: "api-1", svc: "api", app: named("api-1")},
		inst{id: "api-2", svc: "api", app: named("api-2")})
	c := client(t)
	for _, caller := range []string{"web-1", "web-2", "web-3"} {
		seen := map[string]bool{}
		for range 10 {
			_, body, _ := do(t, c, "GET", m.url(caller, "api", "/"), nil)
			seen[body] = true
		}
		if len(seen) != 1 || !strings.HasPrefix(fmt.Sprint(seen), "map[api-") {
			t.Errorf("caller %s reached %v, want one instance", caller, seen)
		}
	}
}
