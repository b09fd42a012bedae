package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JWTProvider is an issuer of end-user JSON Web Tokens (hcl/jwt_provider.go)
// that services require (Service.JWT) and permissions match on
// (Permission.JWT). Its keys come from JWKSFile or JWKSURL; the controller
// reads them (core/jwks) and the sidecars get them inlined in their
// configuration, in JWKS.
type JWTProvider struct {
	Name      string
	Issuer    string
	Audiences []string `json:",omitempty"`
	JWKSFile  string   `json:",omitempty"`
	JWKSURL   string   `json:",omitempty"`
	// JWKSRefresh is how often the controller reads the keys again (from
	// the file or the URL); 0: DefaultJWKSRefresh.
	JWKSRefresh time.Duration `json:",omitempty"`
	ClockSkew   time.Duration `json:",omitempty"`
	// ForwardClaims sets a request header (the value) from a claim (the
	// key) for the application.
	ForwardClaims map[string]string `json:",omitempty"`
	// Where the token is: a header ("Authorization" reads "Bearer <token>"),
	// a query parameter, a cookie. The first that carries one is read.
	Header string `json:",omitempty"`
	Query  string `json:",omitempty"`
	Cookie string `json:",omitempty"`
	// ForwardToken passes the token on to the application; otherwise the
	// sidecar removes it.
	ForwardToken bool `json:",omitempty"`

	// JWKS is the key set as the controller last read it (core/jwks); the
	// policy loader leaves it empty. Plans do not compare it.
	JWKS []byte `json:"-"`
}

// DefaultJWKSRefresh is how often the controller reads a provider's keys
// again when its policy does not say.
const DefaultJWKSRefresh = 5 * time.Minute

// DefaultJWTClockSkew is the clock skew a provider allows when its policy
// does not say.
const DefaultJWTClockSkew = 30 * time.Second

// JWTRequirement is a service's requirement: every HTTP request carries a
// valid token of one of Providers, or is refused with 401.
type JWTRequirement struct {
	Providers []string
}

// JWTMatch is a permission's condition on the end user: a valid token of
// Provider whose claims hold, every one of them (JWTClaimHolds).
type JWTMatch struct {
	Provider string
	Claims   map[string][]string `json:",omitempty"` // claim name -> any of these values
}

// Holds reports whether a valid token's claims (of m's provider; nil when
// the request has none) satisfy m.
func (m *JWTMatch) Holds(claims map[string]any) bool {
	if claims == nil {
		return false
	}
	for name, values := range m.Claims {
		if !JWTClaimHolds(claims, name, values) {
			return false
		}
	}
	return true
}

// JWTClaimHolds reports whether claim name of claims is one of values: a
// string equal to one, a list one of whose elements is, or a number or
// boolean whose JSON spelling is. A name that is not a claim but has dots
// names a nested claim ("realm_access.roles"). The sidecar's evaluator
// (core/proxy/authz) decides the same way; a test holds them equal.
func JWTClaimHolds(claims map[string]any, name string, values []string) bool {
	v, ok := claims[name]
	if !ok && strings.Contains(name, ".") {
		var cur any = claims
		for _, part := range strings.Split(name, ".") {
			obj, isObj := cur.(map[string]any)
			if !isObj {
				return false
			}
			if cur, ok = obj[part]; !ok {
				return false
			}
		}
		v = cur
	}
	if !ok {
		return false
	}
	if list, isList := v.([]any); isList {
		for _, e := range list {
			if s, scalar := claimString(e); scalar && slices.Contains(values, s) {
				return true
			}
		}
		return false
	}
	s, scalar := claimString(v)
	return scalar && slices.Contains(values, s)
}

// claimString spells a scalar claim value as a policy compares it.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// jwtProvidersDiff says which JWT providers a plan adds, removes or
// changes (their keys, read by the controller, are not compared).
func jwtProvidersDiff(o, n map[string]JWTProvider) []string {
	var out []string
	for _, name := range unionKeys(o, n) {
		a, inOld := o[name]
		b, inNew := n[name]
		a.JWKS, b.JWKS = nil, nil
		switch {
		case !inOld:
			out = append(out, fmt.Sprintf("jwt_provider %q: added (issuer %s)", name, b.Issuer))
		case !inNew:
			out = append(out, fmt.Sprintf("jwt_provider %q: removed", name))
		case !reflect.DeepEqual(a, b):
			out = append(out, fmt.Sprintf("jwt_provider %q: changed", name))
		}
	}
	return out
}
