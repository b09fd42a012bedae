package jwtauth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/jwtauth"
	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
)

// outcome is what Authenticate made of a request, in one word: "valid"
// (a token of corp passed), "none" (no token seen, nothing refused) or
// the reason of the refusal.
func outcome(v *jwtauth.Verifier, r *http.Request) string {
	res := v.Authenticate(r, time.Now())
	switch {
	case res.Failure != nil:
		return res.Failure.Reason
	case len(res.Claims) > 0:
		return "valid"
	}
	return "none"
}

// TestHostileTokens: tokens an attacker (or a careless issuer) crafts,
// each signed by the provider's real key unless said otherwise, so that
// only the header or claims trick is on trial. None may pass but the ones
// the table says are accepted, and why.
func TestHostileTokens(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	evil := jwttest.New(t, iss, jose.ES256) // same issuer name, its own keys
	kid := idp.Kid()

	// The attacker's key set, served on loopback: a jku or x5u naming it
	// must never be fetched.
	var fetched atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Write(evil.JWKS(t))
	}))
	defer srv.Close()
	var evilSet struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(evil.JWKS(t), &evilSet); err != nil {
		t.Fatal(err)
	}
	evilJWK := string(evilSet.Keys[0])

	exp := time.Now().Add(time.Hour).Unix()
	claims := func(extra string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":"shop","exp":%d%s}`, iss, exp, extra)
	}
	hdr := func(extra string) string { return fmt.Sprintf(`{"alg":"ES256","typ":"JWT","kid":%q%s}`, kid, extra) }
	// withClaims replaces a claim of the usual set.
	withClaims := func(body string) string { return body }

	for _, tc := range []struct {
		name, token, want, why string
	}{
		{"control: the usual token", idp.SignRaw(t, hdr(""), claims("")), "valid", ""},

		// Headers that point elsewhere for keys: never followed.
		{"jku to the attacker's key set", evil.SignRaw(t, hdr(fmt.Sprintf(`,"jku":%q`, srv.URL)), claims("")), jwtauth.ReasonSignature, "keys come only from the provider's key set"},
		{"x5u to the attacker's key set", evil.SignRaw(t, hdr(fmt.Sprintf(`,"x5u":%q`, srv.URL)), claims("")), jwtauth.ReasonSignature, ""},
		{"jwk: the attacker's key embedded", evil.SignRaw(t, hdr(`,"jwk":`+evilJWK), claims("")), jwtauth.ReasonSignature, ""},
		{"jwk embedded, no kid", evil.SignRaw(t, `{"alg":"ES256","jwk":`+evilJWK+`}`, claims("")), jwtauth.ReasonSignature, ""},

		// crit: extensions the verifier does not understand must fail (RFC 7515 4.1.11).
		{"crit names a registered claim", idp.SignRaw(t, hdr(`,"crit":["exp"],"exp":1`), claims("")), "!valid", ""},
		{"crit names an unknown extension", idp.SignRaw(t, hdr(`,"crit":["weft-ext"],"weft-ext":true`), claims("")), "!valid", ""},
		{"b64 false (RFC 7797)", idp.SignRaw(t, hdr(`,"crit":["b64"],"b64":false`), claims("")), "!valid", ""},

		// alg spellings.
		{"alg NONE", idp.SignRaw(t, `{"alg":"NONE","kid":"`+kid+`"}`, claims("")), jwtauth.ReasonAlgorithm, ""},
		{"alg es256", idp.SignRaw(t, `{"alg":"es256","kid":"`+kid+`"}`, claims("")), jwtauth.ReasonAlgorithm, ""},
		{"alg with a space", idp.SignRaw(t, `{"alg":"ES256 ","kid":"`+kid+`"}`, claims("")), jwtauth.ReasonAlgorithm, ""},
		{"alg a list", idp.SignRaw(t, `{"alg":["ES256"],"kid":"`+kid+`"}`, claims("")), jwtauth.ReasonMalformed, ""},
		{"no alg", idp.SignRaw(t, `{"kid":"`+kid+`"}`, claims("")), jwtauth.ReasonAlgorithm, ""},

		// Duplicate names: one reader takes the first, another the last.
		{"alg twice, none last", idp.SignRaw(t, `{"alg":"ES256","alg":"none","kid":"`+kid+`"}`, claims("")), "!valid", ""},
		{"alg twice, none first", idp.SignRaw(t, `{"alg":"none","alg":"ES256","kid":"`+kid+`"}`, claims("")), jwtauth.ReasonMalformed, "a header naming a parameter twice is refused"},
		{"kid twice", idp.SignRaw(t, `{"alg":"ES256","kid":"nope","kid":"`+kid+`"}`, claims("")), jwtauth.ReasonMalformed, ""},
		{"iss twice", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":"https://evil.test","iss":%q,"aud":"shop","exp":%d}`, iss, exp)), jwtauth.ReasonMalformed, "claims naming a claim twice are refused"},
		{"role twice", idp.SignRaw(t, hdr(""), claims(`,"role":"user","role":"admin"`)), jwtauth.ReasonMalformed, ""},
		{"a claim twice, nested", idp.SignRaw(t, hdr(""), claims(`,"org":{"role":"user","role":"admin"}`)), jwtauth.ReasonMalformed, ""},
		{"header names in another case", idp.SignRaw(t, `{"alg":"ES256","kid":"`+kid+`","ALG":"none","KID":"x"}`, claims("")), "!valid", "a reader that folds case would take alg none: refused rather than guessed"},

		// Other tokens in disguise.
		{"JWE (five parts)", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", jwtauth.ReasonMalformed, ""},
		{"JWS JSON serialization", `{"payload":"e30","signatures":[]}`, jwtauth.ReasonMalformed, ""},
		{"nested JWT (cty JWT)", idp.SignRaw(t, hdr(`,"cty":"JWT"`), `"`+idp.SignRaw(t, hdr(""), claims(""))+`"`), jwtauth.ReasonMalformed, "the payload must be the claims object"},
		{"typ JWE", idp.SignRaw(t, `{"alg":"ES256","typ":"JWE","kid":"`+kid+`"}`, claims("")), "valid", "typ is not checked (docs: a deliberate choice)"},
		{"padding in a part", idp.SignRaw(t, hdr(""), claims("")) + "==", jwtauth.ReasonMalformed, ""},
		{"four parts", idp.SignRaw(t, hdr(""), claims("")) + ".x", jwtauth.ReasonMalformed, ""},

		// Time claims.
		{"exp a string", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":"%d"}`, iss, exp))), jwtauth.ReasonMalformed, ""},
		{"exp a float", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":%d.5}`, iss, exp))), "valid", ""},
		{"exp in exponent form", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":%de0}`, iss, exp))), "valid", ""},
		{"exp huge", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":1e400}`, iss))), jwtauth.ReasonMalformed, ""},
		{"exp in milliseconds", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":%d}`, iss, exp*1000))), jwtauth.ReasonMalformed, "past year 5138: refused, not taken for a far future"},
		{"exp a 30-digit integer", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":%s}`, iss, strings.Repeat("9", 30)))), jwtauth.ReasonMalformed, ""},
		{"exp negative", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":-1}`, iss))), jwtauth.ReasonMalformed, ""},
		{"exp zero", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":0}`, iss))), jwtauth.ReasonExpired, ""},
		{"exp true", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":true}`, iss))), jwtauth.ReasonMalformed, ""},
		{"exp a list", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":[%d]}`, iss, exp))), jwtauth.ReasonMalformed, ""},
		{"exp null", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":null}`, iss))), jwtauth.ReasonMalformed, ""},
		{"no exp", idp.SignRaw(t, hdr(""), withClaims(fmt.Sprintf(`{"iss":%q,"aud":"shop"}`, iss))), jwtauth.ReasonMalformed, ""},
		{"nbf a string", idp.SignRaw(t, hdr(""), claims(`,"nbf":"0"`)), jwtauth.ReasonMalformed, ""},
		{"nbf null", idp.SignRaw(t, hdr(""), claims(`,"nbf":null`)), jwtauth.ReasonMalformed, ""},
		{"nbf far ahead", idp.SignRaw(t, hdr(""), claims(fmt.Sprintf(`,"nbf":%d`, exp))), jwtauth.ReasonNotYetValid, ""},
		{"iat a string", idp.SignRaw(t, hdr(""), claims(`,"iat":"yesterday"`)), jwtauth.ReasonMalformed, "a registered time claim of the wrong type is refused"},
		{"iat in the future", idp.SignRaw(t, hdr(""), claims(fmt.Sprintf(`,"iat":%d`, exp))), "valid", "iat is informational (RFC 7519 4.1.6); exp and nbf decide"},

		// Audience spellings.
		{"aud a number", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":7,"exp":%d}`, iss, exp)), jwtauth.ReasonAudience, ""},
		{"aud a list with a number", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":[7,"shop"],"exp":%d}`, iss, exp)), "valid", ""},
		{"aud an empty list", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":[],"exp":%d}`, iss, exp)), jwtauth.ReasonAudience, ""},
		{"aud an object", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":{"shop":true},"exp":%d}`, iss, exp)), jwtauth.ReasonAudience, ""},
		{"aud in capitals", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":"SHOP","exp":%d}`, iss, exp)), jwtauth.ReasonAudience, ""},
		{"aud with a space", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":"shop ","exp":%d}`, iss, exp)), jwtauth.ReasonAudience, ""},
		{"aud nested list", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":[["shop"]],"exp":%d}`, iss, exp)), jwtauth.ReasonAudience, ""},

		// Issuer spellings.
		{"iss with a trailing slash", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":%d}`, iss+"/", exp)), jwtauth.ReasonIssuer, ""},
		{"iss in capitals", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":%d}`, strings.ToUpper(iss), exp)), jwtauth.ReasonIssuer, ""},
		{"iss a list", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"iss":[%q],"aud":"shop","exp":%d}`, iss, exp)), jwtauth.ReasonIssuer, ""},
		{"iss missing", idp.SignRaw(t, hdr(""), fmt.Sprintf(`{"aud":"shop","exp":%d}`, exp)), jwtauth.ReasonIssuer, ""},

		// Claims that are not an object.
		{"claims a list", idp.SignRaw(t, hdr(""), `[1]`), jwtauth.ReasonMalformed, ""},
		{"claims null", idp.SignRaw(t, hdr(""), `null`), jwtauth.ReasonMalformed, ""},
		{"claims followed by more", idp.SignRaw(t, hdr(""), claims("")+`{}`), jwtauth.ReasonMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(t, config(t, idp.JWKS(t), false, nil))
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+tc.token)
			got := outcome(v, r)
			ok := got == tc.want || (tc.want == "!valid" && got != "valid" && got != "none")
			if !ok {
				t.Errorf("%s, want %s %s", got, tc.want, tc.why)
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the verifier fetched the attacker's jku/x5u %d times, want never", n)
	}
}

// TestHostileKeyChoice: a key set of two keys of different types; a
// token's kid names one, its signature is the other's; no kid.
func TestHostileKeyChoice(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	ecKid := idp.Kid()
	rsKid := idp.Rotate(t, jose.RS256, false) // both in the set; RS256 signs
	v := verifier(t, config(t, idp.JWKS(t), false, nil))
	exp := time.Now().Add(time.Hour).Unix()
	body := fmt.Sprintf(`{"iss":%q,"aud":"shop","exp":%d}`, iss, exp)
	for _, tc := range []struct{ name, header, want string }{
		{"kid of the EC key, signed RS256", fmt.Sprintf(`{"alg":"RS256","kid":%q}`, ecKid), jwtauth.ReasonUnknownKey},
		{"kid of the EC key, alg ES256, RSA signature", fmt.Sprintf(`{"alg":"ES256","kid":%q}`, ecKid), jwtauth.ReasonSignature},
		{"kid of the RSA key", fmt.Sprintf(`{"alg":"RS256","kid":%q}`, rsKid), "valid"},
		{"no kid: every fitting key is tried", `{"alg":"RS256"}`, "valid"},
		{"empty kid", `{"alg":"RS256","kid":""}`, "valid"},
		{"kid a path", `{"alg":"RS256","kid":"../../../../dev/null"}`, jwtauth.ReasonUnknownKey},
		{"kid a number", `{"alg":"RS256","kid":1}`, jwtauth.ReasonMalformed},
		{"kid of the RSA key, alg PS256", fmt.Sprintf(`{"alg":"PS256","kid":%q}`, rsKid), jwtauth.ReasonUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+idp.SignRaw(t, tc.header, body))
			if got := outcome(v, r); got != tc.want {
				t.Errorf("%s, want %s", got, tc.want)
			}
		})
	}
}

// TestHostileTokenPlaces: a provider that reads the Authorization header,
// a query parameter and a cookie, facing every way a client could put a
// token where the verifier would not look but an application might: a
// token the application could read is either verified or refused, never
// passed on unseen.
func TestHostileTokenPlaces(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	evil := jwttest.New(t, "https://evil.test", jose.ES256)
	good := idp.Sign(t, idp.Claims("alice", "shop", nil))
	bad := evil.Sign(t, evil.Claims("mallory", "shop", nil))
	v := verifier(t, config(t, idp.JWKS(t), false, func(p *meshapi.JwtProvider) {
		p.Query, p.Cookie = "access_token", "session"
	}))
	for _, tc := range []struct {
		name   string
		target string   // path and query
		auth   []string // Authorization headers
		cookie []string // Cookie headers
		want   string
	}{
		{name: "lowercase bearer", auth: []string{"bearer " + good}, want: "valid"},
		{name: "BEARER and spaces", auth: []string{"BEARER    " + good + "   "}, want: "valid"},
		{name: "bearer and a tab", auth: []string{"Bearer\t" + good}, want: "valid"},
		{name: "bearer, a tab and a forged token", auth: []string{"Bearer\t" + bad}, want: "!valid"},
		{name: "bearer without a token", auth: []string{"Bearer"}, want: "none"},
		{name: "two Authorization headers", auth: []string{"Bearer " + good, "Bearer " + good}, want: jwtauth.ReasonMalformed},
		{name: "one header, two comma-joined tokens", auth: []string{"Bearer " + good + ", Bearer " + bad}, want: jwtauth.ReasonMalformed},
		{name: "Basic is not a token", auth: []string{"Basic YTpi"}, want: "none"},

		{name: "header valid, query forged", target: "/?access_token=" + bad, auth: []string{"Bearer " + good}, want: jwtauth.ReasonMalformed},
		{name: "header valid, cookie forged", auth: []string{"Bearer " + good}, cookie: []string{"session=" + bad}, want: jwtauth.ReasonMalformed},
		{name: "query valid, cookie forged", target: "/?access_token=" + good, cookie: []string{"session=" + bad}, want: jwtauth.ReasonMalformed},
		{name: "header and query the same token", target: "/?access_token=" + good, auth: []string{"Bearer " + good}, want: "valid"},

		{name: "query name percent-encoded", target: "/?access%5Ftoken=" + bad, want: "!valid"},
		{name: "query name percent-encoded, valid token", target: "/?access%5ftoken=" + good, want: "valid"},
		{name: "query name plain and encoded", target: "/?access_token=" + good + "&access%5Ftoken=" + bad, want: jwtauth.ReasonMalformed},
		{name: "query value percent-encoded", target: "/?access_token=" + url.QueryEscape(bad), want: "!valid"},
		{name: "query after a bad escape", target: "/?x=%zz&access_token=" + bad, want: "!valid"},
		{name: "query name in capitals", target: "/?ACCESS_TOKEN=" + bad, want: "none"},

		{name: "cookie value quoted", cookie: []string{`session="` + bad + `"`}, want: "!valid"},
		{name: "cookie with a byte net/http drops", cookie: []string{"session=" + bad + `\`}, want: "!valid"},
		{name: "cookie with a space inside", cookie: []string{"session=" + bad + " x"}, want: "!valid"},
		{name: "cookie twice in one header", cookie: []string{"session=" + good + "; session=" + bad}, want: jwtauth.ReasonMalformed},
		{name: "cookie in two headers", cookie: []string{"session=" + good, "session=" + bad}, want: jwtauth.ReasonMalformed},
		{name: "cookie, good one and a dropped one", cookie: []string{"session=" + good + "; session=" + bad + `\`}, want: jwtauth.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = "/"
			}
			r := httptest.NewRequest("GET", "http://x"+target, nil)
			r.Header["Authorization"] = tc.auth
			r.Header["Cookie"] = tc.cookie
			got := outcome(v, r)
			if got != tc.want && !(tc.want == "!valid" && got != "valid" && got != "none") {
				t.Errorf("%s, want %s", got, tc.want)
			}
		})
	}
}

// TestHostileClaimHeaders: a client sends the headers a provider sets
// from claims, under every spelling an application could read as the
// same header, and names them in Connection so that a hop-by-hop removal
// would drop the ones the sidecar sets.
func TestHostileClaimHeaders(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	long := strings.Repeat("é", 2500) // 5000 bytes: near the token's size limit once encoded
	tok := idp.Sign(t, idp.Claims(long, "shop", map[string]any{
		"role": map[string]any{"name": "admin", "x": []any{1, "a\r\nX-Evil: 1"}},
	}))
	v := verifier(t, config(t, idp.JWKS(t), false, nil))
	for _, withToken := range []bool{true, false} {
		t.Run(fmt.Sprintf("token=%v", withToken), func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if withToken {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			for _, k := range []string{"X-User", "X_User", "X_USER", "x_user", "x-USER", "X_Role"} {
				r.Header[k] = []string{"mallory"}
			}
			r.Header["Connection"] = []string{"keep-alive, x-user", "X_Role"}
			res := v.Authenticate(r, time.Now())
			if res.Failure != nil {
				t.Fatal(res.Failure)
			}
			v.Forward(r, res)
			for k, vals := range r.Header {
				for _, val := range vals {
					if strings.Contains(val, "mallory") {
						t.Errorf("the client's %s: %s reached the application", k, val)
					}
				}
			}
			if got := r.Header.Get("Connection"); got != "keep-alive" {
				t.Errorf("Connection = %q, want keep-alive alone (claim headers named in it are dropped)", got)
			}
			if withToken {
				if got := r.Header.Get("X-User"); got != long {
					t.Errorf("X-User = %.40q... (%d bytes), want the whole %d-byte sub", got, len(got), len(long))
				}
				role := r.Header.Get("X-Role")
				var back map[string]any
				if err := json.Unmarshal([]byte(role), &back); err != nil || strings.ContainsAny(role, "\r\n") {
					t.Errorf("X-Role = %q: want the object as compact JSON on one line (%v)", role, err)
				}
			}
		})
	}
}

// TestHostileTwoProviders: corp reads the Authorization header, partner a
// cookie. A valid token of one cannot shadow an invalid one of the other,
// and one provider's token in the other's place is not taken for the
// other's.
func TestHostileTwoProviders(t *testing.T) {
	corp := jwttest.New(t, iss, jose.ES256)
	partner := jwttest.New(t, "https://partner.test", jose.ES256)
	cfg := config(t, corp.JWKS(t), false, nil)
	cfg.JwtProviders = append(cfg.JwtProviders, &meshapi.JwtProvider{Name: "partner", Issuer: partner.Issuer, Jwks: partner.JWKS(t), Cookie: "p"})
	v := verifier(t, cfg)
	goodCorp := corp.Sign(t, corp.Claims("alice", "shop", nil))
	goodPartner := partner.Sign(t, partner.Claims("bob", nil, nil))
	for _, tc := range []struct {
		name, auth, cookie, want string
	}{
		{"both valid", "Bearer " + goodCorp, "p=" + goodPartner, "valid"},
		{"corp valid, partner's cookie forged", "Bearer " + goodCorp, "p=" + jwttest.TamperSignature(goodPartner), jwtauth.ReasonSignature},
		{"corp valid, partner's cookie garbage", "Bearer " + goodCorp, "p=x.y.z", jwtauth.ReasonMalformed},
		{"partner valid, corp's header forged", "Bearer " + jwttest.TamperSignature(goodCorp), "p=" + goodPartner, jwtauth.ReasonSignature},
		{"corp's token in partner's cookie", "", "p=" + goodCorp, jwtauth.ReasonIssuer},
		{"partner's token in corp's header", "Bearer " + goodPartner, "", jwtauth.ReasonIssuer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.cookie != "" {
				r.Header.Set("Cookie", tc.cookie)
			}
			if got := outcome(v, r); got != tc.want {
				t.Errorf("%s, want %s", got, tc.want)
			}
		})
	}
}

// TestHostileHeaderSpellings: a provider that reads a header of its own
// (X-Jwt): the same header under underscores, which CGI-style servers
// read as X-Jwt, is a token the verifier must see too.
func TestHostileHeaderSpellings(t *testing.T) {
	idp := jwttest.New(t, iss, jose.ES256)
	evil := jwttest.New(t, "https://evil.test", jose.ES256)
	good := idp.Sign(t, idp.Claims("alice", "shop", nil))
	bad := evil.Sign(t, evil.Claims("mallory", "shop", nil))
	v := verifier(t, config(t, idp.JWKS(t), false, func(p *meshapi.JwtProvider) { p.Header = "X-Jwt" }))
	for _, tc := range []struct {
		name string
		hdr  http.Header
		want string
	}{
		{"X-Jwt", http.Header{"X-Jwt": {good}}, "valid"},
		{"X_Jwt forged", http.Header{"X_jwt": {bad}}, "!valid"},
		{"X-Jwt valid, X_Jwt forged", http.Header{"X-Jwt": {good}, "X_jwt": {bad}}, jwtauth.ReasonMalformed},
		{"x_JWT valid", http.Header{"X_JWT": {good}}, "valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header = tc.hdr
			got := outcome(v, r)
			if got != tc.want && !(tc.want == "!valid" && got != "valid" && got != "none") {
				t.Errorf("%s, want %s", got, tc.want)
			}
			if got == "valid" {
				v.Forward(r, v.Authenticate(r, time.Now()))
				for k := range r.Header {
					if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Jwt") {
						t.Errorf("after Forward, the token is still there: %v", r.Header)
					}
				}
			}
		})
	}
}
