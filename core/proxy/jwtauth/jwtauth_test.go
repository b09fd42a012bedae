package jwtauth_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/jwtauth"
	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
)

const iss = "https://idp.test"

func config(t testing.TB, jwks []byte, required bool, mod func(*meshapi.JwtProvider)) *meshapi.ProxyConfig {
	t.Helper()
	p := &meshapi.JwtProvider{Name: "corp", Issuer: iss, Audiences: []string{"shop"}, Jwks: jwks,
		ClockSkew: durationpb.New(30 * time.Second), Header: "Authorization",
		ForwardClaims: map[string]string{"sub": "X-User", "role": "X-Role"}}
	if mod != nil {
		mod(p)
	}
	cfg := &meshapi.ProxyConfig{Service: "api", Inbound: &meshapi.Inbound{}, JwtProviders: []*meshapi.JwtProvider{p}}
	if required {
		cfg.Inbound.Jwt = &meshapi.JwtRequirement{Providers: []string{"corp"}}
	}
	return cfg
}

func verifier(t testing.TB, cfg *meshapi.ProxyConfig) *jwtauth.Verifier {
	t.Helper()
	v, err := jwtauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAuthenticate: every way a token is refused, with its reason, and
// the valid ones, for each kind of key.
func TestAuthenticate(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			idp := jwttest.New(t, iss, alg)
			other := jwttest.New(t, iss, alg) // same issuer name, keys not in the set
			v := verifier(t, config(t, idp.JWKS(t), true, nil))
			good := idp.Claims("alice", "shop", map[string]any{"role": "admin"})
			now := time.Now()
			for _, tc := range []struct {
				name, token, reason string
				auth                string // the whole Authorization header, when set
			}{
				{name: "valid", token: idp.Sign(t, good)},
				{name: "valid, aud a list", token: idp.Sign(t, idp.Claims("a", []any{"x", "shop"}, nil))},
				{name: "valid, expired within the skew", token: idp.Sign(t, idp.Claims("a", "shop", map[string]any{"exp": now.Add(-10 * time.Second).Unix()}))},
				{name: "missing", reason: jwtauth.ReasonMissing},
				{name: "another scheme", auth: "Basic YWxpY2U6cGFzcw==", reason: jwtauth.ReasonMissing},
				{name: "expired", token: idp.Sign(t, idp.Claims("a", "shop", map[string]any{"exp": now.Add(-time.Minute).Unix()})), reason: jwtauth.ReasonExpired},
				{name: "no exp", token: idp.Sign(t, idp.Claims("a", "shop", map[string]any{"exp": nil})), reason: jwtauth.ReasonMalformed},
				{name: "exp a string", token: idp.Sign(t, idp.Claims("a", "shop", map[string]any{"exp": "tomorrow"})), reason: jwtauth.ReasonMalformed},
				{name: "not yet valid", token: idp.Sign(t, idp.Claims("a", "shop", map[string]any{"nbf": now.Add(time.Hour).Unix()})), reason: jwtauth.ReasonNotYetValid},
				{name: "wrong audience", token: idp.Sign(t, idp.Claims("a", "bank", nil)), reason: jwtauth.ReasonAudience},
				{name: "no audience", token: idp.Sign(t, idp.Claims("a", nil, nil)), reason: jwtauth.ReasonAudience},
				{name: "wrong issuer", token: idp.Sign(t, idp.Claims("a", "shop", map[string]any{"iss": "https://evil.test"})), reason: jwtauth.ReasonIssuer},
				{name: "alg none", token: jwttest.None(good), reason: jwtauth.ReasonAlgorithm},
				{name: "HS256 with the public key", token: idp.HS256WithPublicKey(t, good), reason: jwtauth.ReasonAlgorithm},
				{name: "tampered payload", token: jwttest.TamperPayload(idp.Sign(t, good), idp.Claims("alice", "shop", map[string]any{"role": "root"})), reason: jwtauth.ReasonSignature},
				{name: "tampered signature", token: jwttest.TamperSignature(idp.Sign(t, good)), reason: jwtauth.ReasonSignature},
				{name: "another key, same kid", token: other.Sign(t, good), reason: jwtauth.ReasonSignature},
				{name: "garbage", token: "not-a-token", reason: jwtauth.ReasonMalformed},
				{name: "garbage with dots", token: "a.b.c", reason: jwtauth.ReasonMalformed},
				{name: "oversized", token: strings.Repeat("a", jwtauth.MaxTokenBytes+1), reason: jwtauth.ReasonTooLarge},
				{name: "deep claims", token: idp.Sign(t, idp.Claims("a", "shop", map[string]any{"x": deep(40)})), reason: jwtauth.ReasonTooLarge},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := httptest.NewRequest("GET", "/", nil)
					switch {
					case tc.auth != "":
						r.Header.Set("Authorization", tc.auth)
					case tc.token != "":
						r.Header.Set("Authorization", "Bearer "+tc.token)
					}
					res := v.Authenticate(r, now)
					switch {
					case tc.reason == "" && res.Failure != nil:
						t.Fatalf("refused: %v", res.Failure)
					case tc.reason == "" && res.Subject("corp") == "":
						t.Fatalf("no subject in %v", res.Claims)
					case tc.reason != "" && res.Failure == nil:
						t.Fatalf("accepted, want refused for %s", tc.reason)
					case tc.reason != "" && res.Failure.Reason != tc.reason:
						t.Fatalf("refused for %s (%v), want %s", res.Failure.Reason, res.Failure, tc.reason)
					}
				})
			}
		})
	}
}

func deep(n int) any {
	var v any = "x"
	for range n {
		v = []any{v}
	}
	return v
}

// TestForward: claims become headers, spoofed ones go, the token goes
// unless forwarded; tokens in a query parameter and a cookie.
func TestForward(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	tok := idp.Sign(t, idp.Claims("alice", "shop", map[string]any{"role": []any{"admin", "ops"}}))
	v := verifier(t, config(t, idp.JWKS(t), false, nil))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("X-User", "mallory")
	r.Header.Add("X-Role", "root")
	res := v.Authenticate(r, time.Now())
	if res.Failure != nil {
		t.Fatal(res.Failure)
	}
	v.Forward(r, res)
	if got := r.Header.Values("X-User"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("X-User = %q, want alice alone", got)
	}
	if got := r.Header.Get("X-Role"); got != `["admin","ops"]` {
		t.Errorf("X-Role = %q", got)
	}
	if r.Header.Get("Authorization") != "" {
		t.Error("the token was passed on")
	}
	// Without a token, spoofed claim headers go too.
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-User", "mallory")
	v.Forward(r, v.Authenticate(r, time.Now()))
	if r.Header.Get("X-User") != "" {
		t.Error("a spoofed X-User reached the app")
	}

	qv := verifier(t, config(t, idp.JWKS(t), true, func(p *meshapi.JwtProvider) {
		p.Header, p.Query, p.Cookie = "", "access_token", "session"
	}))
	r = httptest.NewRequest("GET", "/x?a=1&access_token="+tok, nil)
	res = qv.Authenticate(r, time.Now())
	if res.Failure != nil {
		t.Fatal(res.Failure)
	}
	qv.Forward(r, res)
	if strings.Contains(r.URL.RawQuery, "access_token") || r.URL.Query().Get("a") != "1" {
		t.Errorf("query after Forward: %q", r.URL.RawQuery)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "theme=dark; session="+tok)
	res = qv.Authenticate(r, time.Now())
	if res.Failure != nil {
		t.Fatal(res.Failure)
	}
	qv.Forward(r, res)
	if got := r.Header.Get("Cookie"); got != "theme=dark" {
		t.Errorf("Cookie after Forward: %q", got)
	}
	r = httptest.NewRequest("GET", "/?access_token=a&access_token=b", nil)
	if res := qv.Authenticate(r, time.Now()); res.Failure == nil || res.Failure.Reason != jwtauth.ReasonMalformed {
		t.Errorf("two tokens: %+v", res.Failure)
	}
}

func TestChallenge(t *testing.T) {
	if got := jwtauth.Challenge("api", nil); got != `Bearer realm="api"` {
		t.Errorf("missing: %s", got)
	}
	got := jwtauth.Challenge("api", &jwtauth.Failure{Reason: jwtauth.ReasonExpired, Detail: `the "token" expired`})
	if got != `Bearer realm="api", error="invalid_token", error_description="the 'token' expired"` {
		t.Errorf("expired: %s", got)
	}
}

// TestParseKeySet: what a key set may not hold.
func TestParseKeySet(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	for _, tc := range []struct {
		name, jwks, want string
	}{
		{"symmetric", `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}`, "symmetric"},
		{"not json", `{"keys":`, "reading the key set"},
		{"too many", `{"keys":[` + strings.Repeat(`{"kty":"EC"},`, jwtauth.MaxKeys) + `{"kty":"EC"}]}`, "more than the 64 allowed"},
		{"too large", `{"keys":[],"x":"` + strings.Repeat("a", jwtauth.MaxJWKSBytes) + `"}`, "more than the"},
		{"too deep", `{"keys":[` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `]}`, "reading the key set"},
		{"HS alg", strings.Replace(string(idp.JWKS(t)), `"alg":"ES256"`, `"alg":"HS256"`, 1), "algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jwtauth.ParseKeySet([]byte(tc.jwks))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	keys, err := jwtauth.ParseKeySet(idp.JWKS(t))
	if err != nil || len(keys) != 1 {
		t.Fatalf("a good set: %d keys, %v", len(keys), err)
	}
}

// TestRotation: a verifier built on the new key set takes tokens of the
// new key and, once the old key left the set, no more of the old one.
func TestRotation(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	oldTok := idp.Sign(t, idp.Claims("a", "shop", nil))
	idp.Rotate(t, jose.RS256, true)
	newTok := idp.Sign(t, idp.Claims("a", "shop", nil))
	before := verifier(t, config(t, nil, true, nil))
	after := verifier(t, config(t, idp.JWKS(t), true, nil))
	for _, tc := range []struct {
		v      *jwtauth.Verifier
		tok    string
		reason string
	}{
		{before, newTok, jwtauth.ReasonUnknownKey},
		{after, newTok, ""},
		{after, oldTok, jwtauth.ReasonUnknownKey},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tc.tok)
		res := tc.v.Authenticate(r, time.Now())
		if got := ""; res.Failure != nil {
			got = res.Failure.Reason
			if got != tc.reason {
				t.Errorf("reason %q (%v), want %q", got, res.Failure, tc.reason)
			}
		} else if tc.reason != "" {
			t.Errorf("accepted, want %s", tc.reason)
		}
	}
}

// FuzzAuthenticate: no token, however malformed, panics the verifier or
// is accepted without the issuer's signature.
func FuzzAuthenticate(f *testing.F) {
	idp := jwttest.New(f, iss, jose.ES256)
	good := idp.Sign(f, idp.Claims("alice", "shop", nil))
	f.Add(good)
	f.Add(jwttest.None(idp.Claims("alice", "shop", nil)))
	f.Add(idp.HS256WithPublicKey(f, idp.Claims("alice", "shop", nil)))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.")
	cfg := &meshapi.ProxyConfig{Service: "api", Inbound: &meshapi.Inbound{Jwt: &meshapi.JwtRequirement{Providers: []string{"corp"}}},
		JwtProviders: []*meshapi.JwtProvider{{Name: "corp", Issuer: iss, Jwks: idp.JWKS(f), Header: "Authorization"}}}
	v, err := jwtauth.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{"Bearer " + tok}
		res := v.Authenticate(r, time.Now())
		if res.Failure == nil && strings.TrimSpace(tok) != good {
			// Another spelling of a valid token may only pass if it
			// carries the same signed bytes.
			if !strings.HasPrefix(strings.TrimSpace(tok), strings.SplitN(good, ".", 2)[0]) {
				t.Fatalf("accepted a token the issuer did not sign: %q", tok)
			}
		}
	})
}
