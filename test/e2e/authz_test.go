package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
)

// rawStatus sends "METHOD target" as written (no client library cleans
// it) to addr and returns the answer's status.
func rawStatus(t *testing.T, addr, method, target string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n", method, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// `weft authz` answers, for a table of calls, what the callee's sidecar
// really does with them (each call is sent too), names the intention and
// where it is written, and exits 0 allowed, 1 denied, 2 on a bad question.
func TestAuthz(t *testing.T) {
	m := startTapMesh(t, "127.0.102.20")
	weft := filepath.Join(binDir, "weft")
	web := net.JoinHostPort(m.client, "9001")
	// The line of the intention in the policy file the mesh runs.
	declared := fmt.Sprintf("mesh.hcl:%d", strings.Count(tapPolicy[:strings.Index(tapPolicy, `intention "client" "web"`)], "\n")+1)
	for _, tc := range []struct {
		caller, callee, method, path string
		allowed                      bool
		intention                    string // "" when the default decides
		bad                          bool   // the sidecar refuses it as a bad request
	}{
		{"client", "web", "GET", "/", true, "client -> web", false},
		{"client", "web", "GET", "/admin", false, "client -> web", false},
		{"client", "web", "GET", "/admin/users", false, "client -> web", false},
		{"client", "web", "GET", "/%61dmin", false, "client -> web", false},
		{"client", "web", "GET", "/x/../admin", false, "client -> web", false},
		{"client", "web", "GET", "//admin", false, "client -> web", false},
		{"client", "web", "GET", "/admin;x=1", false, "client -> web", false},
		{"client", "web", "GET", "/./admin", false, "client -> web", false},
		{"client", "web", "GET", "/ADMIN", true, "client -> web", false}, // paths are case-sensitive, for the app too
		{"client", "web", "POST", "/adminx", false, "client -> web", false},
		{"client", "web", "GET", "/%2e%2e/admin", false, "client -> web", false},
		{"client", "web", "GET", "/a%00b", false, "", true},
		{"client", "web", "GET", "/a?x=1;y=2", false, "", true},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			out, stderr, code := m.ctl.RunWeft(t, weft, "authz", tc.caller, tc.callee, tc.method, tc.path, "--json")
			var rep api.AuthzReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("weft authz --json (exit %d): %v\n%s%s", code, err, out, stderr)
			}
			wantCode := 1
			if tc.allowed {
				wantCode = 0
			}
			if rep.Allowed != tc.allowed || code != wantCode || rep.Intention != tc.intention || (rep.BadRequest != "") != tc.bad {
				t.Errorf("weft authz: exit %d, %+v; want allowed=%v (exit %d), intention %q, bad request %v", code, rep, tc.allowed, wantCode, tc.intention, tc.bad)
			}
			if tc.intention != "" && !strings.HasSuffix(rep.Declared, declared) {
				t.Errorf("the intention is declared at %q, want %s", rep.Declared, declared)
			}
			// What the sidecar really does with the same request.
			status := rawStatus(t, web, tc.method, tc.path)
			switch {
			case tc.bad && status != 400,
				!tc.bad && !tc.allowed && status != 403,
				tc.allowed && (status == 403 || status == 400):
				t.Errorf("the sidecar answered %s %s with %d, but weft authz says allowed=%v bad=%v", tc.method, tc.path, status, rep.Allowed, rep.BadRequest != "")
			}
		})
	}

	t.Run("connections and callers", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"authz", "client", "web"}, 0, `by intention "client -> web" at `},
			{[]string{"authz", "client", "secret"}, 1, `by the mesh's default_action = "deny"`},
			{[]string{"authz", "default/client", "default/web"}, 0, "ALLOWED"},
			{[]string{"authz", id("client"), "web"}, 0, "ALLOWED"},
			{[]string{"authz", "spiffe://other.domain/ns/default/svc/client", "web"}, 1, "not in this mesh's trust domain"},
			{[]string{"authz", "other/client", "web"}, 1, "DENIED"},
			{[]string{"authz", "client", "other/web"}, 2, "runs in namespace default"},
			{[]string{"authz", "client", "web", "GET"}, 2, "CALLER CALLEE METHOD PATH"},
			{[]string{"authz", "cli ent", "web"}, 2, "want a service name"},
			{[]string{"authz", "client", "web", "G(T", "/"}, 1, "bad request"},
		} {
			out, stderr, code := m.ctl.RunWeft(t, weft, tc.args...)
			if code != tc.code || !strings.Contains(out+stderr, tc.want) {
				t.Errorf("weft %v: exit %d, want %d and %q:\n%s%s", tc.args, code, tc.code, tc.want, out, stderr)
			}
		}
		// The real call under default deny is refused too.
		if code := m.call(t, "9003", "/"); code != 403 {
			t.Errorf("client -> secret answered %d, want 403", code)
		}
	})
}
