package compile

import (
	"sort"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
)

// jwtMatch compiles a permission's condition on the end user, its claims
// sorted by name so that the same policy compiles to the same bytes.
func jwtMatch(m *policy.JWTMatch) *meshapi.JwtMatch {
	if m == nil {
		return nil
	}
	out := &meshapi.JwtMatch{Provider: m.Provider}
	names := make([]string, 0, len(m.Claims))
	for n := range m.Claims {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out.Claims = append(out.Claims, &meshapi.JwtClaim{Name: n, Values: m.Claims[n]})
	}
	return out
}

// jwtInbound returns svc's requirement and the providers its inbound
// checks tokens of: those the requirement, az's permissions and the
// per_jwt_subject rate limits name, in
// name order, with the keys the controller read (policy.JWTProvider.JWKS).
func jwtInbound(p *policy.Policy, svc policy.Service, az *meshapi.Authz) (*meshapi.JwtRequirement, []*meshapi.JwtProvider) {
	names := map[string]bool{}
	var req *meshapi.JwtRequirement
	if svc.JWT != nil && len(svc.JWT.Providers) > 0 {
		req = &meshapi.JwtRequirement{Providers: append([]string(nil), svc.JWT.Providers...)}
		for _, n := range svc.JWT.Providers {
			names[n] = true
		}
	}
	for _, rl := range svc.RateLimits {
		if rl.PerJWTSubject != "" {
			names[rl.PerJWTSubject] = true
		}
	}
	for _, r := range az.GetRules() {
		for _, perm := range r.GetPermissions() {
			if m := perm.GetJwt(); m != nil {
				names[m.GetProvider()] = true
			}
		}
	}
	if len(names) == 0 {
		return req, nil
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []*meshapi.JwtProvider
	for _, n := range sorted {
		jp, ok := p.JWTProviders[n]
		if !ok {
			continue // the policy loader refuses a reference to no provider
		}
		out = append(out, jwtProvider(jp))
	}
	return req, out
}

func jwtProvider(jp policy.JWTProvider) *meshapi.JwtProvider {
	skew := jp.ClockSkew
	if skew == 0 {
		skew = policy.DefaultJWTClockSkew
	}
	mp := &meshapi.JwtProvider{
		Name:         jp.Name,
		Issuer:       jp.Issuer,
		Audiences:    jp.Audiences,
		Jwks:         jp.JWKS,
		ClockSkew:    duration(skew),
		Header:       jp.Header,
		Query:        jp.Query,
		Cookie:       jp.Cookie,
		ForwardToken: jp.ForwardToken,
	}
	if len(jp.ForwardClaims) > 0 {
		mp.ForwardClaims = make(map[string]string, len(jp.ForwardClaims))
		for c, h := range jp.ForwardClaims {
			mp.ForwardClaims[c] = h
		}
	}
	return mp
}
