package l7

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// spellingPolicy lets client call api, but for /admin, DELETE, a request
// with X-Role: admin and one with a debug query parameter.
const spellingPolicy = `
service "client" {
  binding "local" { name = "client" }
  protocol = "http"
  upstream "api" {
    local_port = 9001
  }
}
service "api" {
  binding "local" { name = "api" }
  protocol = "http"
}
intention "client" "api" {
  permission {
    action = "deny"
    match {
      path_prefix = "/admin"
    }
  }
  permission {
    action = "deny"
    match {
      methods = ["DELETE"]
    }
  }
  permission {
    action = "deny"
    match {
      header "x-role" {
        exact = "admin"
      }
    }
  }
  permission {
    action = "deny"
    match {
      query "debug" {
        present = true
      }
    }
  }
  permission {
    action = "allow"
  }
}
`

// e2eSpellings are spellings of denied requests, each written raw on the
// wire: net/http's client would clean some of them up itself.
var e2eSpellings = []struct {
	head string
	want int // 403: the rule held on the canonical request; 400: refused outright
}{
	{"GET /admin HTTP/1.1", 403},
	{"GET //admin HTTP/1.1", 403},
	{"GET /./admin HTTP/1.1", 403},
	{"GET /x/../admin HTTP/1.1", 403},
	{"GET /../../admin HTTP/1.1", 403},
	{"GET /%2e%2e/admin HTTP/1.1", 403},
	{"GET /x/%2E%2e/admin HTTP/1.1", 403},
	{"GET /x/.%2e/admin HTTP/1.1", 403},
	{"GET /%61dmin HTTP/1.1", 403},
	{"GET /%61%64%6D%69%6e/x HTTP/1.1", 403},
	{"GET /admin;jsessionid=1 HTTP/1.1", 403},
	{"GET http://api/%61dmin HTTP/1.1", 403},
	{"GET /admin%2fx HTTP/1.1", 400},
	{"GET /x%2f..%2fadmin HTTP/1.1", 400},
	{"GET /x%5c..%5cadmin HTTP/1.1", 400},
	{"GET /x\\..\\admin HTTP/1.1", 400},
	{"GET /admin%00 HTTP/1.1", 400},
	{"GET /x%0a/../admin HTTP/1.1", 400},
	{"GET /x/..;/admin HTTP/1.1", 400},
	{"GET /x%0aaccess%20inbound%20caller=forged HTTP/1.1", 400},
	{"DELETE /items/1 HTTP/1.1", 403},
	{"delete /items/1 HTTP/1.1", 400},
	{"Delete /items/1 HTTP/1.1", 400},
	{"GET /items HTTP/1.1\nX-Role: admin", 403},
	{"GET /items HTTP/1.1\nx-ROLE: admin", 403},
	{"GET /items HTTP/1.1\nX-Role: user\nX-Role: admin", 400},
	{"GET /items HTTP/1.1\nX_Role: admin", 400},
	{"GET /items?debug HTTP/1.1", 403},
	{"GET /items?%64ebug=1 HTTP/1.1", 403},
	{"GET /items?x=1;debug=1 HTTP/1.1", 400},
	{"GET /items?debug=0&debug=1 HTTP/1.1", 400},
	{"GET /items?DEBUG=1 HTTP/1.1", 400},
}

// TestControllerSpellings runs the real controller, local adapter and
// weft-proxy processes in front of an application that records every
// request it gets (testdata/recorder), and sends each spelling of a
// denied request raw through the caller's sidecar: each is refused, the
// application sees none, the application always sees the verified caller
// however the client names or forges the identity headers, and no
// request input forges a line of a sidecar's log.
func TestControllerSpellings(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the controller")
	}
	bin := buildBinaries(t, map[string]string{"weft-recorder": "./test/l7/testdata/recorder"})
	dir := t.TempDir()
	record := filepath.Join(dir, "seen.jsonl")
	workloads := harness.Workload("client", filepath.Join(bin, "weft-demo-app")) +
		harness.Workload("api", filepath.Join(bin, "weft-recorder"), fmt.Sprintf("env     = { RECORD = %q }", record))
	cm := startControllerMesh(t, bin, dir, spellingPolicy, workloads, "127.0.86.2", 2)
	out := net.JoinHostPort(cm.address(t, "client"), "9001")
	eventually(t, "the first call through the client's sidecar", func() bool {
		code, _, _, err := try(client(t), "GET", "http://"+out+"/items/1", nil)
		return err == nil && code == 200
	})

	for _, sp := range e2eSpellings {
		t.Run(sp.head, func(t *testing.T) {
			code, body := rawRequest(t, out, sp.head+"\nHost: api", "")
			if code != sp.want || !strings.HasPrefix(body, "weft: ") {
				t.Errorf("%d %q, want %d from the sidecar", code, body, sp.want)
			}
		})
	}

	const callerID = "spiffe://weft.local/ns/default/svc/client"
	const forged = "spiffe://weft.local/ns/default/svc/admin"
	t.Run("identity headers", func(t *testing.T) {
		code, body := rawRequest(t, out, "GET /who HTTP/1.1\nHost: api\nConnection: X-Weft-Caller, X-Forwarded-Client-Cert\n"+
			"X-Weft-Caller: "+forged+"\nX-Forwarded-Client-Cert: By="+forged+"\nX_Weft_Caller: "+forged, "")
		var got struct{ Headers http.Header }
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("%d %q, want 200 and what the app saw", code, body)
		}
		if c := got.Headers.Values("X-Weft-Caller"); len(c) != 1 || c[0] != callerID {
			t.Errorf("the app saw X-Weft-Caller %q, want only %q", c, callerID)
		}
		if x := got.Headers.Get("X-Forwarded-Client-Cert"); !strings.HasSuffix(x, ";URI="+callerID) {
			t.Errorf("the app saw X-Forwarded-Client-Cert %q", x)
		}
		if strings.Contains(body, forged) {
			t.Errorf("the forged identity reached the app: %s", body)
		}
	})

	// Allowed requests whose paths look like log fields, then one to
	// know the record is complete: the app answers after it records.
	for _, target := range []string{"/ok%20status=500", "/admin%20status=200"} {
		rawRequest(t, out, "GET "+target+" HTTP/1.1\nHost: api", "")
	}
	if code, body := rawRequest(t, out, "GET /items/last HTTP/1.1\nHost: api", ""); code != 200 {
		t.Fatalf("the last allowed request: %d %q", code, body)
	}
	allowed := map[string]bool{"/items/1": true, "/who": true, "/ok%20status=500": true, "/items/last": true}
	f, err := os.Open(record)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var s struct{ Method, Target string }
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("the record %q: %v", sc.Text(), err)
		}
		n++
		if !allowed[s.Target] || s.Method != "GET" {
			t.Errorf("the app got %s %s", s.Method, s.Target)
		}
	}
	if n == 0 {
		t.Error("the app recorded nothing, not even the allowed requests")
	}

	// The sidecars' logs: every request input stays inside a quoted field.
	logs := map[string]string{}
	eventually(t, "the api sidecar to log the allowed request", func() bool {
		logs = proxyLogs(cm.DataDir)
		return strings.Contains(logs["api-0"], `path="/ok status=500" status=200`)
	})
	if !strings.Contains(logs["api-0"], `access inbound DENIED caller=`+callerID+` dest=api method=GET path="/admin status=200" reason="weft: `) {
		t.Errorf("the api sidecar's log lacks the quoted DENIED line:\n%s", logs["api-0"])
	}
	for id, log := range logs {
		if strings.ContainsRune(log, 0) {
			t.Errorf("the log of %s has a NUL byte", id)
		}
		for _, line := range strings.Split(log, "\n") {
			if f := strings.SplitN(line, " ", 3); len(f) == 3 && (strings.HasPrefix(f[2], "access inbound caller=forged") || strings.HasPrefix(f[2], "status=")) {
				t.Errorf("a forged line in the log of %s: %q", id, line)
			}
		}
	}
}

// rawRequest writes head (request line and headers, "\n" for line ends)
// and body on a new connection to addr and reads the response.
func rawRequest(t *testing.T, addr, head, body string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	msg := strings.ReplaceAll(head, "\n", "\r\n") + "\r\nConnection: close\r\n\r\n" + body
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", head, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
