package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/dashboard"
)

// TestHandlerDashboard: the admin API serves the dashboard's files at /ui/
// without the token (they hold no data), and no spelling of a path under
// /ui/ reaches the API's data without it.
func TestHandlerDashboard(t *testing.T) {
	a := startAdmin(t, testToken)
	get := func(t *testing.T, method, path string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, "https://"+a.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		hc := *a.hc
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String(), resp.Header
	}

	files := []struct{ path, contentType, has string }{
		{"/ui/", "text/html", `src="app.js"`},
		{"/ui/index.html", "text/html", `src="app.js"`},
		{"/ui/app.js", "text/javascript", "/v1/stats"},
		{"/ui/style.css", "text/css", ".graph"},
	}
	for _, f := range files {
		t.Run("GET "+f.path+" without a token", func(t *testing.T) {
			code, body, h := get(t, "GET", f.path)
			if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), f.contentType) || !strings.Contains(body, f.has) {
				t.Fatalf("%d %s %.200q, want 200 %s holding %q", code, h.Get("Content-Type"), body, f.contentType, f.has)
			}
			for k, v := range dashboard.SecurityHeaders {
				if h.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, h.Get(k), v)
				}
			}
		})
	}

	t.Run("/ui redirects to /ui/", func(t *testing.T) {
		code, _, h := get(t, "GET", "/ui")
		if code != http.StatusMovedPermanently || h.Get("Location") != "/ui/" {
			t.Errorf("%d Location %q, want 301 to /ui/", code, h.Get("Location"))
		}
	})

	// Every spelling an attacker might try to reach the API through the
	// token-free prefix, or a file that is not the dashboard's.
	hostile := []string{
		"/ui/../v1/status", "/ui/%2e%2e/v1/status", "/ui/..%2fv1%2fstatus", "/ui/%2e%2e%2fv1%2fstatus",
		"/ui//v1/status", "/ui/v1/status", "/ui/./v1/status", "/ui/.%2e/v1/status", "/ui%2f../v1/status",
		"/ui/../v1/ca/roots", "/ui/ui/../../v1/policy", "/UI/", "/ui/APP.JS", "/ui/app.js/", "/ui/app.js%00",
		"/ui/app.js/..", "/ui/..", "/ui/.", "/ui/dashboard.go", "/ui/ui/app.js", "/ui/" + strings.Repeat("a", 8000),
	}
	for _, p := range hostile {
		t.Run("hostile "+p[:min(len(p), 40)], func(t *testing.T) {
			code, body, h := get(t, "GET", p)
			if code == http.StatusOK || strings.Contains(body, "trust_domain") || strings.Contains(body, "bundle_pem") || strings.Contains(body, "files") && code < 300 {
				t.Fatalf("%d %.300q, want no file and no data", code, body)
			}
			if code >= 300 && code < 400 && !strings.HasPrefix(h.Get("Location"), "/") {
				t.Errorf("redirect to %q leaves the admin API", h.Get("Location"))
			}
		})
	}

	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		t.Run(m+" /ui/ is refused", func(t *testing.T) {
			if code, body, _ := get(t, m, "/ui/"); code != http.StatusMethodNotAllowed {
				t.Errorf("%d %q, want 405", code, body)
			}
		})
	}

	t.Run("the data still needs the token", func(t *testing.T) {
		for _, p := range []string{"/v1/status", "/v1/ca/roots", "/v1/policy"} {
			if code, _, _ := get(t, "GET", p); code != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %d, want 401", p, code)
			}
		}
	})
}
