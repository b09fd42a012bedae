package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// MinRSABits is the smallest RSA key accepted.
const MinRSABits = 2048

// keyFits reports whether k's type and size fit algorithm alg.
func keyFits(k jose.JSONWebKey, alg string) bool {
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && key.N.BitLen() >= MinRSABits
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// Forward prepares r for the application after Authenticate: it removes
// every header a provider sets from claims (a client must not be able to
// send them) however spelled, sets them from the claims of the valid
// tokens in res, and removes each provider's token unless the provider
// forwards it.
func (v *Verifier) Forward(r *http.Request, res Result) {
	if v == nil {
		return
	}
	dropSpellings(r.Header, v.forwarded)
	for _, p := range v.providers {
		if claims := res.Claims[p.name]; claims != nil {
			for _, f := range p.forward {
				if s, ok := headerValue(claims[f[0]]); ok {
					r.Header.Set(f[1], s)
				}
			}
		}
		if !p.forwardToken {
			p.strip(r)
		}
	}
}

// dropSpellings removes from h every header named one of names in any
// case or with underscores for dashes ("X_User" for "X-User", which
// CGI-style servers read as the same header), and those names from
// Connection, so that a hop-by-hop removal downstream cannot drop the
// headers set from claims.
func dropSpellings(h http.Header, names []string) {
	if len(names) == 0 {
		return
	}
	same := func(k string) bool {
		k = strings.TrimSpace(k)
		for _, n := range names {
			if sameHeader(k, n) {
				return true
			}
		}
		return false
	}
	for k := range h {
		if same(k) {
			delete(h, k)
		}
	}
	var kept []string
	changed := false
	for _, line := range h["Connection"] {
		var toks []string
		for tok := range strings.SplitSeq(line, ",") {
			if same(tok) {
				changed = true
				continue
			}
			toks = append(toks, tok)
		}
		if len(toks) > 0 {
			kept = append(kept, strings.Join(toks, ","))
		}
	}
	switch {
	case !changed:
	case len(kept) == 0:
		delete(h, "Connection")
	default:
		h["Connection"] = kept
	}
}

// strip removes p's token from r.
func (p *provider) strip(r *http.Request) {
	if p.header != "" {
		if p.bearer {
			v := strings.TrimSpace(r.Header.Get(p.header))
			if len(v) > 6 && strings.EqualFold(v[:6], "bearer") && (v[6] == ' ' || v[6] == '\t') {
				r.Header.Del(p.header)
			}
		} else {
			dropSpellings(r.Header, []string{p.header})
		}
	}
	if p.query != "" && mayHoldParam(r.URL.RawQuery, p.query) {
		if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && q.Has(p.query) {
			q.Del(p.query)
			r.URL.RawQuery = q.Encode()
			r.RequestURI = r.URL.RequestURI()
		}
	}
	if p.cookie != "" && len(rawCookies(r.Header, p.cookie)) > 0 {
		// The other pairs go on as the client wrote them.
		var keep []string
		for _, line := range r.Header["Cookie"] {
			for pair := range strings.SplitSeq(line, ";") {
				pair = strings.TrimSpace(pair)
				if k, _, _ := strings.Cut(pair, "="); pair != "" && strings.TrimSpace(k) != p.cookie {
					keep = append(keep, pair)
				}
			}
		}
		r.Header.Del("Cookie")
		if len(keep) > 0 {
			r.Header.Set("Cookie", strings.Join(keep, "; "))
		}
	}
}

// headerValue spells a claim as a header value: a string as it is (JSON
// when it holds a control character), anything else as compact JSON.
func headerValue(v any) (string, bool) {
	if v == nil {
		return "", false
	}
	if s, ok := v.(string); ok && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s, true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Challenge is the WWW-Authenticate value of a 401 (RFC 6750, section 3):
// a missing token gets the bare challenge, a refused one
// error="invalid_token" (error="invalid_request" when malformed or given
// twice) with why.
func Challenge(realm string, f *Failure) string {
	s := fmt.Sprintf("Bearer realm=%q", quoteSafe(realm))
	if f == nil || f.Reason == ReasonMissing {
		return s
	}
	code := "invalid_token"
	if f.Reason == ReasonMalformed && strings.Contains(f.Detail, "given") {
		code = "invalid_request"
	}
	return s + fmt.Sprintf(", error=%q, error_description=%q", code, quoteSafe(f.Detail))
}

// quoteSafe keeps the characters RFC 6750 allows in a quoted value
// (%x20-21 / %x23-5B / %x5D-7E).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}
