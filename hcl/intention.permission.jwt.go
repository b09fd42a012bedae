package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/weftmesh/weft/core/policy"
)

// Bounds of a permission's jwt block.
const (
	maxJWTClaims      = 32
	maxJWTClaimValues = 64
)

// permissionJWT is a decoded jwt block inside a permission block: the
// permission matches only requests with a valid end-user token of the
// provider whose claims hold, each one (a claim holds when its value, or
// an element of it when it is a list, is the value given or one of the
// values given; a name with dots that is no claim names a nested one).
//
//	permission {
//	  action = "allow"
//	  match { path_prefix = "/admin" }
//	  jwt {
//	    provider = "corp"
//	    claims   = { role = "admin", groups = ["ops", "sre"] }
//	  }
//	}
//
// A request that the permission would allow but for a token it lacks gets
// 401 (authenticate, then try again); one whose valid token has other
// claims gets 403.
type permissionJWT struct {
	policy.JWTMatch
	ProviderRange hcl.Range
	DeclRange     hcl.Range
}

var permissionJWTSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "provider", Required: true}, {Name: "claims"}},
}

func decodePermissionJWTBlock(block *hcl.Block) (*permissionJWT, hcl.Diagnostics) {
	j := &permissionJWT{DeclRange: block.DefRange}
	content, diags := block.Body.Content(permissionJWTSchema)
	if attr, ok := content.Attributes["provider"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			j.Provider, j.ProviderRange = s, attr.Expr.Range()
		}
	}
	if attr, ok := content.Attributes["claims"]; ok {
		c, d := decodeClaims(attr)
		diags = append(diags, d...)
		j.Claims = c
	}
	return j, diags
}

// decodeClaims reads { name = "value", other = ["a", "b"] }.
func decodeClaims(attr *hcl.Attribute) (map[string][]string, hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.DynamicPseudoType)
	if diags.HasErrors() || val.IsNull() {
		return nil, diags
	}
	rng := attr.Expr.Range()
	bad := func(detail string) (map[string][]string, hcl.Diagnostics) {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid claims", Detail: detail, Subject: &rng, Context: attr.Range.Ptr()})
	}
	if !val.Type().IsObjectType() && !val.Type().IsMapType() {
		return bad(`claims must be a map from claim names to a value or a list of values, such as { role = "admin", groups = ["ops", "sre"] }.`)
	}
	if val.LengthInt() > maxJWTClaims {
		return bad(fmt.Sprintf("claims names %d claims; at most %d are allowed.", val.LengthInt(), maxJWTClaims))
	}
	out := map[string][]string{}
	for it := val.ElementIterator(); it.Next(); {
		k, v := it.Element()
		name := k.AsString()
		if name == "" || len(name) > maxJWTStringLen {
			return bad("a claim name is empty or too long.")
		}
		if v.IsNull() {
			return bad(fmt.Sprintf("claim %q has no value; give a string or a list of strings.", name))
		}
		if s, err := convert.Convert(v, cty.String); err == nil && !v.Type().IsTupleType() && !v.Type().IsListType() {
			out[name] = []string{s.AsString()}
			continue
		}
		l, err := convert.Convert(v, cty.List(cty.String))
		if err != nil || l.LengthInt() == 0 || l.LengthInt() > maxJWTClaimValues {
			return bad(fmt.Sprintf("claim %q must be a string or a list of 1 to %d strings.", name, maxJWTClaimValues))
		}
		for li := l.ElementIterator(); li.Next(); {
			_, e := li.Element()
			if e.IsNull() {
				return bad(fmt.Sprintf("claim %q lists a null; give strings.", name))
			}
			out[name] = append(out[name], e.AsString())
		}
	}
	return out, diags
}

// checkPermissionJWT reports permission jwt blocks that name an
// undeclared provider.
func checkPermissionJWT(intentions []*intention, providers map[string]*jwtProvider) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, in := range intentions {
		for _, p := range in.Permissions {
			if p.JWT == nil || p.JWT.Provider == "" {
				continue
			}
			if _, ok := providers[p.JWT.Provider]; !ok {
				diags = append(diags, unknownJWTProvider(p.JWT.Provider, p.JWT.ProviderRange, providers))
			}
		}
	}
	return diags
}
