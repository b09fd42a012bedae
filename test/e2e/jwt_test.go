package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/proxy/jwtauth"
	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
	"github.com/weftmesh/weft/test/harness"
)

// jwtPolicy: web requires a token of corp (jwks_url, served by the test)
// or files (jwks_file); admin allows only corp tokens whose role is admin.
const jwtPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

jwt_provider "corp" {
  issuer         = "https://corp.test"
  audiences      = ["shop"]
  jwks_url       = "%s"
  jwks_refresh   = "1s"
  forward_claims = { sub = "X-User", role = "X-Role" }
}

jwt_provider "files" {
  issuer       = "https://files.test"
  jwks_file    = "%s"
  jwks_refresh = "1s"
  forward_claims = { sub = "X-User" }
}

service "client" {
  binding "local" { name = "client" }
  protocol = "http"
  upstream "web" { local_port = 9001 }
  upstream "admin" { local_port = 9002 }
}

service "web" {
  binding "local" { name = "web" }
  protocol = "http"
  jwt { providers = ["corp", "files"] }
  rate_limit "per-user" {
    requests_per_second = 0.01
    burst               = 2
    per_jwt_subject     = "corp"
    match { path_prefix = "/limited" }
  }
}

service "admin" {
  binding "local" { name = "admin" }
  protocol = "http"
}

intention "client" "web" {
  action = "allow"
}

intention "client" "admin" {
  permission {
    action = "allow"
    jwt {
      provider = "corp"
      claims   = { role = "admin" }
    }
  }
}
`

// TestJWT: end-user tokens checked by the callee's sidecar, on the local
// mesh: every kind of bad token is a 401 with a WWW-Authenticate
// challenge, a valid one without the claim a permission wants a 403, a
// valid one a 200 with its claims forwarded as headers (and spoofed ones
// gone), and a key rotation at the identity provider is picked up without
// a restart, from a JWKS URL and from a JWKS file.
func TestJWT(t *testing.T) {
	corp := jwttest.New(t, "https://corp.test", jose.ES256)
	files := jwttest.New(t, "https://files.test", jose.RS256)

	// The identity provider's key set, served over loopback HTTP.
	ln, err := net.Listen("tcp", "127.0.112.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var idpDown atomic.Bool // the provider answers 500
	idp := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if idpDown.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(corp.JWKS(t))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = idp.Serve(ln) }()
	t.Cleanup(func() { idp.Close() })
	jwksFile := filepath.Join(t.TempDir(), "files.jwks.json")
	harness.WriteFile(t, jwksFile, string(files.JWKS(t)))

	policy := fmt.Sprintf(jwtPolicy, "http://"+ln.Addr().String()+"/jwks", jwksFile)
	app := filepath.Join(binDir, "weft-demo-app")
	ctl, _ := startLocalMesh(t, policy, harness.Workload("client", app)+harness.Workload("web", app)+harness.Workload("admin", app), "127.0.112.10")
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))
	client := s.Address("client")
	web := "http://" + net.JoinHostPort(client, "9001")
	admin := "http://" + net.JoinHostPort(client, "9002")

	hc := &http.Client{Timeout: 10 * time.Second}
	call := func(t *testing.T, url string, hdr map[string]string) (int, string, http.Header) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		code, body, h, err := harness.Do(hc, req)
		if err != nil {
			t.Fatal(err)
		}
		return code, body, h
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	good := corp.Claims("alice", "shop", map[string]any{"role": "user"})
	now := time.Now()
	t.Run("401", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			hdr   map[string]string
			error string // the challenge's error; "" for none (no token)
		}{
			{"missing", nil, ""},
			{"expired", bearer(corp.Sign(t, corp.Claims("alice", "shop", map[string]any{"exp": now.Add(-time.Hour).Unix()}))), "invalid_token"},
			{"not yet valid", bearer(corp.Sign(t, corp.Claims("alice", "shop", map[string]any{"nbf": now.Add(time.Hour).Unix()}))), "invalid_token"},
			{"wrong audience", bearer(corp.Sign(t, corp.Claims("alice", "bank", nil))), "invalid_token"},
			{"wrong issuer", bearer(corp.Sign(t, corp.Claims("alice", "shop", map[string]any{"iss": "https://evil.test"}))), "invalid_token"},
			{"alg none", bearer(jwttest.None(good)), "invalid_token"},
			{"HS256 with the public key", bearer(corp.HS256WithPublicKey(t, good)), "invalid_token"},
			{"tampered payload", bearer(jwttest.TamperPayload(corp.Sign(t, good), corp.Claims("alice", "shop", map[string]any{"role": "admin"}))), "invalid_token"},
			{"tampered signature", bearer(jwttest.TamperSignature(corp.Sign(t, good))), "invalid_token"},
			{"garbage", bearer("garbage"), "invalid_token"},
			{"oversized", bearer(strings.Repeat("a", jwtauth.MaxTokenBytes+1)), "invalid_token"},
			{"files key for the corp issuer", bearer(files.Sign(t, corp.Claims("alice", "shop", nil))), "invalid_token"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, body, h := call(t, web+"/headers", tc.hdr)
				ch := h.Get("WWW-Authenticate")
				if code != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer realm="web"`) {
					t.Fatalf("answered %d, WWW-Authenticate %q, want 401 with a Bearer challenge: %s", code, ch, body)
				}
				if tc.error == "" && strings.Contains(ch, "error=") || tc.error != "" && !strings.Contains(ch, `error="`+tc.error+`"`) {
					t.Errorf("WWW-Authenticate %q, want error %q", ch, tc.error)
				}
				t.Logf("%s: %s", tc.name, strings.TrimSpace(body))
			})
		}
	})

	headers := func(t *testing.T, body string) http.Header {
		t.Helper()
		var h http.Header
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("decoding the app's headers: %v: %s", err, body)
		}
		return h
	}
	t.Run("200 with claims forwarded", func(t *testing.T) {
		hdr := bearer(corp.Sign(t, good))
		hdr["X-User"] = "mallory" // spoofed: the sidecar replaces it
		hdr["X-Role"] = "admin"
		code, body, _ := call(t, web+"/headers", hdr)
		if code != http.StatusOK {
			t.Fatalf("answered %d: %s", code, body)
		}
		h := headers(t, body)
		if got := h.Values("X-User"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("the app got X-User %q, want alice alone", got)
		}
		if got := h.Values("X-Role"); len(got) != 1 || got[0] != "user" {
			t.Errorf("the app got X-Role %q, want user alone", got)
		}
		if h.Get("Authorization") != "" {
			t.Error("the token reached the app; forward_token is off")
		}
		// A token of the file provider, without a role: a spoofed X-Role goes.
		code, body, _ = call(t, web+"/headers", map[string]string{"Authorization": "Bearer " + files.Sign(t, files.Claims("bob", nil, nil)), "X-Role": "admin"})
		if code != http.StatusOK {
			t.Fatalf("files token: answered %d: %s", code, body)
		}
		if h := headers(t, body); h.Get("X-User") != "bob" || len(h.Values("X-Role")) != 0 {
			t.Errorf("files token: the app got X-User %q, X-Role %q; want bob and none", h.Get("X-User"), h.Values("X-Role"))
		}
	})

	t.Run("403 without the claim, 401 without a token", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			hdr  map[string]string
			want int
		}{
			{"no token", nil, http.StatusUnauthorized},
			{"role user", bearer(corp.Sign(t, good)), http.StatusForbidden},
			{"role admin", bearer(corp.Sign(t, corp.Claims("root", "shop", map[string]any{"role": "admin"}))), http.StatusOK},
			{"files token, not the provider the permission names", bearer(files.Sign(t, files.Claims("bob", nil, map[string]any{"role": "admin"}))), http.StatusUnauthorized},
			{"bad token", bearer(jwttest.None(corp.Claims("root", "shop", map[string]any{"role": "admin"}))), http.StatusUnauthorized},
		} {
			code, body, h := call(t, admin+"/", tc.hdr)
			if code != tc.want {
				t.Errorf("%s: answered %d, want %d: %s", tc.name, code, tc.want, body)
			}
			if code == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="admin"`) {
				t.Errorf("%s: 401 without a challenge (%q)", tc.name, h.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("rate limit per end user", func(t *testing.T) {
		dave := bearer(corp.Sign(t, corp.Claims("dave", "shop", nil)))
		for i, want := range []int{http.StatusNotFound, http.StatusNotFound, http.StatusTooManyRequests} {
			if code, body, _ := call(t, web+"/limited", dave); code != want {
				t.Errorf("dave's request %d answered %d, want %d (burst 2 per end user): %s", i+1, code, want, body)
			}
		}
		if code, body, _ := call(t, web+"/limited", bearer(corp.Sign(t, corp.Claims("erin", "shop", nil)))); code != http.StatusNotFound {
			t.Errorf("erin's first request answered %d, want 404 (her own bucket): %s", code, body)
		}
	})

	// Rotation: the identity provider replaces its key; tokens of the new
	// key pass once the controller has read the new set and the sidecar
	// applied it, without a restart, and the old key's tokens fail.
	rotate := func(t *testing.T, name string, iss *jwttest.Issuer, alg jose.SignatureAlgorithm, publish func()) {
		oldTok := iss.Sign(t, iss.Claims("carol", "shop", nil))
		if code, body, _ := call(t, web+"/headers", bearer(oldTok)); code != http.StatusOK {
			t.Fatalf("before the rotation, a token of the old key answered %d: %s", code, body)
		}
		iss.Rotate(t, alg, true)
		publish()
		newTok := iss.Sign(t, iss.Claims("carol", "shop", nil))
		start := time.Now()
		harness.Eventually(t, name+": a token of the new key accepted", 30*time.Second, func() error {
			if code, body, _ := call(t, web+"/headers", bearer(newTok)); code != http.StatusOK {
				return fmt.Errorf("answered %d: %s", code, body)
			}
			return nil
		})
		t.Logf("%s: the new key was accepted %s after the rotation (jwks_refresh 1s, then a configuration push)", name, time.Since(start).Round(time.Millisecond))
		if code, _, _ := call(t, web+"/headers", bearer(oldTok)); code != http.StatusUnauthorized {
			t.Errorf("%s: a token of the removed key answered %d, want 401", name, code)
		}
	}
	t.Run("rotation at the JWKS URL", func(t *testing.T) {
		rotate(t, "jwks_url", corp, jose.ES384, func() {}) // the server reads corp's set on every fetch
	})
	t.Run("rotation in the JWKS file", func(t *testing.T) {
		rotate(t, "jwks_file", files, jose.ES256, func() { harness.ReplaceFile(t, jwksFile, string(files.JWKS(t))) })
	})

	// The key sets' state, in GET /v1/status and `weft status`: both read;
	// then the provider fails and the URL's set shows the error while its
	// last good keys stay in force (tokens still accepted).
	t.Run("key sets in status", func(t *testing.T) {
		url := "url:http://" + ln.Addr().String() + "/jwks"
		sets := func() (map[string]api.JWKSReport, error) {
			st, err := ctl.Status()
			if err != nil {
				return nil, err
			}
			m := map[string]api.JWKSReport{}
			for _, k := range st.JWKS {
				m[k.Source] = k
			}
			return m, nil
		}
		m, err := sets()
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range []string{url, "file:" + jwksFile} {
			if k := m[src]; k.KeyBytes == 0 || k.ReadAt == nil || k.Error != "" {
				t.Errorf("status of key set %s: %+v, want keys read and no error (all: %v)", src, k, m)
			}
		}
		idpDown.Store(true)
		took := harness.Eventually(t, "status to show the failing key set", 20*time.Second, func() error {
			m, err := sets()
			if err != nil {
				return err
			}
			if k := m[url]; k.Error == "" || k.KeyBytes == 0 {
				return fmt.Errorf("key set %s: %+v", url, k)
			}
			return nil
		})
		m, _ = sets()
		t.Logf("the provider's failure shows in status %s after it began (jwks_refresh 1s): %q, last good keys kept", took.Round(time.Millisecond), m[url].Error)
		out, _, _ := ctl.RunWeft(t, filepath.Join(binDir, "weft"), "status")
		if !strings.Contains(out, "JWT KEYS") || !strings.Contains(out, "500") {
			t.Errorf("weft status lists no JWT key set with the provider's error:\n%s", out)
		}
		if code, body, _ := call(t, web+"/headers", bearer(corp.Sign(t, corp.Claims("carol", "shop", nil)))); code != http.StatusOK {
			t.Errorf("with the provider down, a token of the last good keys answered %d: %s", code, body)
		}
	})
}
