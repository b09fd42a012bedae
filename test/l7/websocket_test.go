package l7

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocket: a WebSocket upgrade crosses both sidecars (HTTP/1.1
// between them for the upgrade) and echoes messages both ways, while
// ordinary requests on the same upstream keep working.
func TestWebSocket(t *testing.T) {
	up := websocket.Upgrader{}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			fmt.Fprint(w, "plain")
			return
		}
		c, err := up.Upgrade(w, r, http.Header{"X-Seen-Caller": {r.Header.Get("X-Weft-Caller")}})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	m := start(t, policyFor(`
  timeouts {
    request = "1s"
  }`), inst{id: "web-1", svc: "web"}, inst{id: "api-1", svc: "api", app: app})
	url := strings.Replace(m.url("web-1", "api", "/ws"), "http://", "ws://", 1)
	d := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dialing %s: %v", url, err)
	}
	defer conn.Close()
	if got := resp.Header.Get("X-Seen-Caller"); !strings.HasSuffix(got, "/svc/web") {
		t.Errorf("the app saw caller %q, want the web identity", got)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	for i := range 5 {
		msg := fmt.Sprint("hello ", i)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("reading echo %d: %v", i, err)
		}
		if string(got) != "echo: "+msg {
			t.Errorf("echo %q, want %q", got, "echo: "+msg)
		}
	}
	if code, body, _ := do(t, client(t), "GET", m.url("web-1", "api", "/plain"), nil); code != 200 || body != "plain" {
		t.Errorf("a plain request: %d %q", code, body)
	}
}
