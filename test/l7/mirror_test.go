package l7

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

const mirrorPolicy = `
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 1
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  route "all" {
    match {
      header "x-phase" {
        exact = "2"
      }
    }
    mirror "shadow" {
      percent = 100
    }
  }
  route "half" {
    mirror "shadow" {
      percent = 50
    }
  }
}
service "shadow" {
  protocol = "http"
  binding "local" { name = "shadow" }
}
intention "web" "*" {
  action = "allow"
}
`

// TestMirror: copies reach the mirror at the configured rate, with the
// body and a -shadow host, and the caller never waits on them.
func TestMirror(t *testing.T) {
	var copies atomic.Int64
	var badCopies atomic.Int64
	gate := make(chan struct{})
	var gated atomic.Int64
	shadow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Phase") == "2" {
			gated.Add(1)
			<-gate
			return
		}
		buf := make([]byte, 64)
		n, _ := r.Body.Read(buf)
		if !strings.HasSuffix(r.Host, "-shadow") || string(buf[:n]) != "payload" {
			badCopies.Add(1)
		}
		copies.Add(1)
	})
	m := start(t, mirrorPolicy, inst{id: "web-1", svc: "web"},
		inst{id: "api-1", svc: "api", app: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 64)
			n, _ := r.Body.Read(buf)
			fmt.Fprintf(w, "api got %s", buf[:n])
		})},
		inst{id: "shadow-1", svc: "shadow", app: shadow})
	c := client(t)
	const n = 400
	for range n {
		resp, err := c.Post(m.url("web-1", "api", "/"), "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		k, _ := resp.Body.Read(buf)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(buf[:k]) != "api got payload" {
			t.Fatalf("the real request got %d %q", resp.StatusCode, buf[:k])
		}
	}
	sentLine := `weft_mirrored_requests_total{peer="shadow",result="sent"} `
	eventually(t, "every copy to arrive", func() bool {
		s, _ := strconv.Atoi(m.metric("web-1", sentLine))
		return s > 0 && int64(s) == copies.Load()
	})
	within(t, "mirrored requests", int(copies.Load()), n, 0.5)
	if badCopies.Load() > 0 {
		t.Errorf("%d copies lacked the body or the -shadow host", badCopies.Load())
	}

	// A mirror that never answers does not hold the caller back.
	for i := range 20 {
		code, body, _ := do(t, c, "GET", m.url("web-1", "api", "/"), http.Header{"X-Phase": {"2"}})
		if code != 200 {
			t.Fatalf("request %d with a stuck mirror: %d %q", i, code, body)
		}
	}
	eventually(t, "the copies to reach the stuck mirror", func() bool { return gated.Load() == 20 })
	close(gate)
}
