package l7

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// TestEgressAttack: an app that may call one declared external service
// tries to reach another destination through its listener (absolute URI,
// CONNECT, a redirect, an upgrade), and external services declared by an
// IP literal or with a name their certificate does not carry.
func TestEgressAttack(t *testing.T) {
	ca := harness.NewTestCA(t, "outside CA")
	caFile := ca.WritePEM(t, filepath.Join(t.TempDir(), "ca.pem"))

	// The undeclared destination: it must never be reached.
	var stolen atomic.Int64
	undeclared := startTLS(t, ca.Issue(t, "undeclared.test", "127.0.0.1"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		fmt.Fprint(w, "undeclared")
	}))
	declared := startTLS(t, ca.Issue(t, "api.pay.test", "127.0.0.1"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "https://"+undeclared+"/stolen", http.StatusFound)
			return
		}
		fmt.Fprintf(w, "outside %s %s upgrade=%q", r.Host, r.RequestURI, r.Header.Get("Upgrade"))
	}))
	_, port, _ := net.SplitHostPort(declared)
	local, err := harness.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	m := start(t, fmt.Sprintf(`
mesh {
  trust_domain   = "weft.local"
  default_action = "deny"
  egress         = "deny"
}
external_service "pay" {
  host     = "api.pay.test"
  address  = "127.0.0.1"
  port     = %[1]s
  protocol = "http"
  tls { ca_file = %[2]q }
}
external_service "byip" {
  host     = "127.0.0.1"
  port     = %[1]s
  protocol = "http"
  tls { ca_file = %[2]q }
}
external_service "wrongname" {
  host     = "other.pay.test"
  address  = "127.0.0.1"
  port     = %[1]s
  protocol = "http"
  tls { ca_file = %[2]q }
}
service "web" {
  binding "local" { name = "web" }
  upstream "pay"       { local_port = %[3]d }
  upstream "byip"      { local_port = %[4]d }
  upstream "wrongname" { local_port = %[5]d }
}
intention "web" "pay"       { action = "allow" }
intention "web" "byip"      { action = "allow" }
intention "web" "wrongname" { action = "allow" }
`, port, caFile, local[0], local[1], local[2]), inst{id: "web-1", svc: "web"})

	payAddr := strings.TrimPrefix(m.url("web-1", "pay", ""), "http://")
	raw := func(req string) (int, string) {
		c, err := net.DialTimeout("tcp", payAddr, wait)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location") + " " + string(b)
	}
	want := "outside api.pay.test:" + port + " "
	for _, tc := range []struct {
		name, req string
		code      int
		body      string // a prefix
	}{
		{"Host of the undeclared destination", "GET /x HTTP/1.1\r\nHost: " + undeclared + "\r\n\r\n", 200, " " + want + "/x"},
		{"absolute URI of the undeclared destination", "GET https://" + undeclared + "/x HTTP/1.1\r\nHost: " + undeclared + "\r\n\r\n", 200, " " + want + "/x"},
		{"absolute URI, plain scheme", "GET http://" + undeclared + "/x HTTP/1.1\r\nHost: api.pay.test\r\n\r\n", 200, " " + want + "/x"},
		{"CONNECT to the undeclared destination", "CONNECT " + undeclared + " HTTP/1.1\r\nHost: " + undeclared + "\r\n\r\n", 400, ""},
		{"a redirect to the undeclared destination is not followed", "GET /redirect HTTP/1.1\r\nHost: api.pay.test\r\n\r\n", 302, "https://" + undeclared + "/stolen"},
		{"an h2c upgrade", "GET /up HTTP/1.1\r\nHost: api.pay.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 200, " " + want + `/up upgrade=""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := raw(tc.req)
			if code != tc.code || !strings.HasPrefix(body, tc.body) {
				t.Errorf("%d %.200q, want %d %q...", code, body, tc.code, tc.body)
			}
		})
	}
	c := client(t)
	if code, body, _ := do(t, c, "GET", m.url("web-1", "byip", "/ip"), nil); code != 200 || !strings.HasPrefix(body, "outside 127.0.0.1:"+port+" /ip") {
		t.Errorf("an external service by IP literal, certificate with that IP: %d %q", code, body)
	}
	if code, body, _ := do(t, c, "GET", m.url("web-1", "wrongname", "/x"), nil); code != http.StatusBadGateway || !strings.Contains(body, `not valid for "other.pay.test"`) {
		t.Errorf("a certificate without the declared name: %d %q, want 502 naming it", code, body)
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the undeclared destination was reached %d times", n)
	}
}

// startTLS serves h over TLS with cert on a loopback port and returns its
// address.
func startTLS(t *testing.T, cert tls.Certificate, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: wait, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
