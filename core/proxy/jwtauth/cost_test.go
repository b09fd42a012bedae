package jwtauth_test

import (
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/proxy/jwtauth"
	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
)

// BenchmarkForgedNoKid is the cost of refusing a forged token that names
// no kid (and, to compare, one that names a kid), against a key set of MaxKeys RSA keys: every key that fits the
// algorithm is tried (docs/edge-threats.md), so this is the most one
// request can make the verifier work.
func BenchmarkForgedNoKid(b *testing.B) {
	idp := jwttest.New(b, iss, jose.RS256)
	for range jwtauth.MaxKeys - 1 {
		idp.Rotate(b, jose.RS256, false)
	}
	v := verifier(b, config(b, idp.JWKS(b), true, nil))
	for _, bc := range []struct{ name, header string }{
		{"no-kid", `{"alg":"RS256"}`},
		{"kid", `{"alg":"RS256","kid":"` + idp.Kid() + `"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			forged := jwttest.TamperSignature(idp.SignRaw(b, bc.header, `{"iss":"`+iss+`","aud":"shop","exp":4000000000}`))
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+forged)
			now := time.Now()
			for b.Loop() {
				if res := v.Authenticate(r, now); res.Failure == nil || res.Failure.Reason != jwtauth.ReasonSignature {
					b.Fatalf("%+v", res.Failure)
				}
			}
		})
	}
}
