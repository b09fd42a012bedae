package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
	"github.com/weftmesh/weft/test/harness"
)

// gatewayJWTPolicy: the gateway edge (service edge) ends TLS for
// shop.example.com and routes it to frontend; edge requires a token of
// corp (its service's jwt block) and passes it on (forward_token), so
// that frontend's sidecar, where the intention edge -> frontend is
// enforced, checks the permission's claim itself. Each end user may send
// 2 requests to /limited (edge's rate limit, at the gateway).
const gatewayJWTPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

jwt_provider "corp" {
  issuer         = "https://corp.test"
  audiences      = ["shop"]
  jwks_url       = %q
  jwks_refresh   = "1s"
  forward_claims = { sub = "X-User", role = "X-Role" }
  forward_token  = true
}

service "edge" {
  binding "local" { name = "edge" }
  jwt { providers = ["corp"] }
  rate_limit "per-user" {
    requests_per_second = 0.01
    burst               = 2
    per_jwt_subject     = "corp"
    match { path_prefix = "/limited" }
  }
}

service "frontend" {
  binding "local" { name = "frontend" }
  protocol = "http"
}

gateway "edge" {
  listener "https" {
    port     = 8443
    protocol = "https"
    tls {
      cert_file = %q
      key_file  = %q
      sni       = ["shop.example.com"]
    }
    route "shop" {
      hosts   = ["shop.example.com"]
      service = "frontend"
    }
  }
}

intention "edge" "frontend" {
  permission {
    action = "allow"
    jwt {
      provider = "corp"
      claims   = { role = "admin" }
    }
  }
}
`

// curlAnswer is what /usr/bin/curl got: the status, the headers and the
// body.
type curlAnswer struct {
	Proto  string // HTTP/1.1, HTTP/2
	Code   int
	Header http.Header
	Body   string
}

// curl runs the real curl binary against https://host:port/path with the
// given headers over HTTP/1.1, trusting caFile and resolving host to addr
// (curl --resolve): an outside client, as a user would run it.
func curl(t *testing.T, caFile, host, addr, path string, hdr ...string) (*curlAnswer, error) {
	t.Helper()
	return curlVersion(t, "--http1.1", caFile, host, addr, path, hdr...)
}

// curlVersion is curl with the HTTP version flag given (--http1.1,
// --http2).
func curlVersion(t *testing.T, version, caFile, host, addr, path string, hdr ...string) (*curlAnswer, error) {
	t.Helper()
	ip, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-sS", "--max-time", "10", version, "--cacert", caFile,
		"--resolve", host + ":" + port + ":" + ip, "-D", "-", "-o", "-"}
	for _, h := range hdr {
		args = append(args, "-H", h)
	}
	args = append(args, "https://"+net.JoinHostPort(host, port)+path)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/curl", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("curl %s: %w: %s", path, err, out)
	}
	r := bufio.NewReader(strings.NewReader(string(out)))
	tp := textproto.NewReader(r)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("curl %s: reading the status line: %w: %s", path, err, out)
	}
	a := &curlAnswer{}
	if _, err := fmt.Sscanf(line, "%s %d", &a.Proto, &a.Code); err != nil {
		return nil, fmt.Errorf("curl %s: status line %q: %w", path, line, err)
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("curl %s: reading headers: %w: %s", path, err, out)
	}
	a.Header = http.Header(mh)
	var body strings.Builder
	_, _ = r.WriteTo(&body)
	a.Body = body.String()
	return a, nil
}

// TestGatewayJWT: an outside client (curl) reaches frontend through the
// gateway over TLS with an end-user token. The gateway answers 401 with a
// challenge to every bad token (expired, wrong audience, wrong issuer,
// alg none, HS256 keyed with the public key, tampered); a valid token
// passes it and reaches frontend's sidecar, which enforces the intention
// edge -> frontend: 403 without the role admin, 200 with it, frontend
// seeing the claims as headers (spoofed ones replaced), and the client's
// address and scheme in X-Forwarded-For and X-Forwarded-Proto (what the
// client sent of them dropped). Each end user has their own rate limit
// bucket at the gateway. A key rotation at the identity provider's JWKS
// URL is picked up without a restart.
func TestGatewayJWT(t *testing.T) {
	corp := jwttest.New(t, "https://corp.test", jose.ES256)
	ln := listen(t, "127.0.113.1:0")
	fetches := make(chan struct{}, 1)
	idp := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(corp.JWKS(t))
		select {
		case fetches <- struct{}{}:
		default:
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = idp.Serve(ln) }()
	t.Cleanup(func() { idp.Close() })

	dir := t.TempDir()
	cert := harness.NewServerCert(t, dir, "shop.example.com")
	policy := fmt.Sprintf(gatewayJWTPolicy, "http://"+ln.Addr().String()+"/jwks", cert.CertFile, cert.KeyFile)
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("frontend", app) + harness.Workload("edge", "/bin/sleep", `args = ["infinity"]`)
	ctl, _ := startLocalMesh(t, policy, workloads, "127.0.113.10")
	start := time.Now()
	st := ctl.WaitFor(t, "2 instances, the sidecar and the gateway acknowledging", 60*time.Second, harness.Converged(2))
	t.Logf("the mesh converged in %v", time.Since(start).Round(time.Millisecond))
	gw := net.JoinHostPort(st.Address("edge"), "8443")

	get := func(t *testing.T, tok string, hdr ...string) *curlAnswer {
		t.Helper()
		if tok != "" {
			hdr = append(hdr, "Authorization: Bearer "+tok)
		}
		a, err := curl(t, cert.CAFile, "shop.example.com", gw, "/headers", hdr...)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	admin := corp.Claims("alice", "shop", map[string]any{"role": "admin"})

	// The gateway's listener comes up with its configuration.
	start = time.Now()
	harness.Eventually(t, "the gateway to answer a valid token through frontend", 30*time.Second, func() error {
		a, err := curl(t, cert.CAFile, "shop.example.com", gw, "/headers", "Authorization: Bearer "+corp.Sign(t, admin))
		if err != nil {
			return err
		}
		if a.Code != http.StatusOK {
			return fmt.Errorf("answered %d: %s", a.Code, a.Body)
		}
		return nil
	})
	t.Logf("frontend answered through the gateway %v after convergence", time.Since(start).Round(time.Millisecond))

	now := time.Now()
	t.Run("401", func(t *testing.T) {
		good := corp.Claims("alice", "shop", map[string]any{"role": "admin"})
		for _, tc := range []struct {
			name, tok, err string // err: the challenge's error ("" for none)
		}{
			{"no token", "", ""},
			{"expired", corp.Sign(t, corp.Claims("alice", "shop", map[string]any{"role": "admin", "exp": now.Add(-time.Hour).Unix()})), "invalid_token"},
			{"wrong audience", corp.Sign(t, corp.Claims("alice", "bank", map[string]any{"role": "admin"})), "invalid_token"},
			{"wrong issuer", corp.Sign(t, corp.Claims("alice", "shop", map[string]any{"role": "admin", "iss": "https://evil.test"})), "invalid_token"},
			{"alg none", jwttest.None(good), "invalid_token"},
			{"HS256 with the public key", corp.HS256WithPublicKey(t, good), "invalid_token"},
			{"tampered payload", jwttest.TamperPayload(corp.Sign(t, corp.Claims("alice", "shop", map[string]any{"role": "user"})), good), "invalid_token"},
			{"tampered signature", jwttest.TamperSignature(corp.Sign(t, good)), "invalid_token"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := get(t, tc.tok)
				ch := a.Header.Get("WWW-Authenticate")
				if a.Code != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer realm="edge"`) {
					t.Fatalf("answered %d, WWW-Authenticate %q, want 401 with the gateway's Bearer challenge: %s", a.Code, ch, a.Body)
				}
				if tc.err == "" && strings.Contains(ch, "error=") || tc.err != "" && !strings.Contains(ch, `error="`+tc.err+`"`) {
					t.Errorf("WWW-Authenticate %q, want error %q", ch, tc.err)
				}
				t.Logf("%s: 401, %s", tc.name, ch)
			})
		}
	})

	t.Run("403 without the claim", func(t *testing.T) {
		a := get(t, corp.Sign(t, corp.Claims("bob", "shop", map[string]any{"role": "user"})))
		if a.Code != http.StatusForbidden {
			t.Fatalf("a valid token with role user answered %d, want 403 (the intention edge -> frontend wants role admin): %s", a.Code, a.Body)
		}
		if ch := a.Header.Get("WWW-Authenticate"); ch != "" {
			t.Errorf("403 with a challenge %q: the token was valid", ch)
		}
		t.Logf("role user: 403, %s", strings.TrimSpace(a.Body))
	})

	t.Run("200 with the claim, claims forwarded", func(t *testing.T) {
		a := get(t, corp.Sign(t, admin), "X-User: mallory", "X-Role: root")
		if a.Code != http.StatusOK {
			t.Fatalf("a valid token with role admin answered %d: %s", a.Code, a.Body)
		}
		var h http.Header
		if err := json.Unmarshal([]byte(a.Body), &h); err != nil {
			t.Fatalf("decoding the headers frontend saw: %v: %s", err, a.Body)
		}
		if got := h.Values("X-User"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("frontend saw X-User %q, want alice alone (the spoofed mallory replaced)", got)
		}
		if got := h.Values("X-Role"); len(got) != 1 || got[0] != "admin" {
			t.Errorf("frontend saw X-Role %q, want admin alone (the spoofed root replaced)", got)
		}
		t.Logf("frontend saw X-User %q, X-Role %q", h.Values("X-User"), h.Values("X-Role"))

		// The same over HTTP/2 (ALPN h2): 200, and 401 without a token.
		a2, err := curlVersion(t, "--http2", cert.CAFile, "shop.example.com", gw, "/headers", "Authorization: Bearer "+corp.Sign(t, admin))
		if err != nil || a2.Code != http.StatusOK || a2.Proto != "HTTP/2" {
			t.Errorf("over HTTP/2 with the claim: %+v %v, want HTTP/2 200", a2, err)
		}
		a2, err = curlVersion(t, "--http2", cert.CAFile, "shop.example.com", gw, "/headers")
		if err != nil || a2.Code != http.StatusUnauthorized || a2.Proto != "HTTP/2" || !strings.HasPrefix(a2.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("over HTTP/2 without a token: %+v %v, want HTTP/2 401 with a challenge", a2, err)
		}
	})

	t.Run("X-Forwarded-For and -Proto from the gateway", func(t *testing.T) {
		a := get(t, corp.Sign(t, admin), "X-Forwarded-For: 203.0.113.66", "X_Forwarded_For: 203.0.113.66",
			"X-Forwarded-Proto: http", "X-Forwarded-Host: evil.example.com", "Forwarded: for=203.0.113.66")
		if a.Code != http.StatusOK {
			t.Fatalf("answered %d: %s", a.Code, a.Body)
		}
		var h http.Header
		if err := json.Unmarshal([]byte(a.Body), &h); err != nil {
			t.Fatalf("decoding the headers frontend saw: %v: %s", err, a.Body)
		}
		// curl calls from 127.0.0.1 (the kernel's source for loopback).
		if got := h.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("frontend saw X-Forwarded-For %q, want 127.0.0.1 alone (the client's address; what it sent dropped)", got)
		}
		if got := h.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "https" {
			t.Errorf("frontend saw X-Forwarded-Proto %q, want https alone", got)
		}
		for k, v := range h {
			if strings.Contains(strings.Join(v, ","), "203.0.113.66") || strings.Contains(strings.Join(v, ","), "evil.example.com") {
				t.Errorf("frontend saw the client's %s: %q", k, v)
			}
		}
		t.Logf("frontend saw X-Forwarded-For %q, X-Forwarded-Proto %q", h.Values("X-Forwarded-For"), h.Values("X-Forwarded-Proto"))
	})

	t.Run("rate limit per end user at the gateway", func(t *testing.T) {
		dave := corp.Sign(t, corp.Claims("dave", "shop", map[string]any{"role": "admin"}))
		for i, want := range []int{http.StatusNotFound, http.StatusNotFound, http.StatusTooManyRequests} {
			a, err := curl(t, cert.CAFile, "shop.example.com", gw, "/limited", "Authorization: Bearer "+dave)
			if err != nil {
				t.Fatal(err)
			}
			if a.Code != want {
				t.Errorf("dave's request %d answered %d, want %d (burst 2 per end user, at the gateway): %s", i+1, a.Code, want, a.Body)
			}
			if a.Code == http.StatusTooManyRequests {
				if a.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				t.Logf("dave's third request: 429, Retry-After %s: %s", a.Header.Get("Retry-After"), strings.TrimSpace(a.Body))
			}
		}
		erin := corp.Sign(t, corp.Claims("erin", "shop", map[string]any{"role": "admin"}))
		if a, err := curl(t, cert.CAFile, "shop.example.com", gw, "/limited", "Authorization: Bearer "+erin); err != nil || a.Code != http.StatusNotFound {
			t.Errorf("erin's first request: %v %v, want 404 (her own bucket)", a, err)
		}
	})

	t.Run("key rotation without a restart", func(t *testing.T) {
		oldTok := corp.Sign(t, admin)
		pids := instancePids(t, ctl.DataDir)
		corp.Rotate(t, jose.ES384, true)
		newTok := corp.Sign(t, corp.Claims("alice", "shop", map[string]any{"role": "admin"}))
		start := time.Now()
		harness.Eventually(t, "a token of the new key accepted through the gateway", 30*time.Second, func() error {
			a, err := curl(t, cert.CAFile, "shop.example.com", gw, "/headers", "Authorization: Bearer "+newTok)
			if err != nil {
				return err
			}
			if a.Code != http.StatusOK {
				return fmt.Errorf("answered %d: %s", a.Code, a.Body)
			}
			return nil
		})
		t.Logf("a token of the rotated key was accepted through the gateway %v after the rotation (jwks_refresh 1s, then a configuration push to the gateway and frontend's sidecar)",
			time.Since(start).Round(time.Millisecond))
		if a := get(t, oldTok); a.Code != http.StatusUnauthorized {
			t.Errorf("a token of the removed key answered %d, want 401", a.Code)
		}
		for _, pid := range pids {
			if !pidAlive(pid) {
				t.Errorf("process %d (an app or a proxy) is gone: the rotation restarted something", pid)
			}
		}
	})
}
