package authz

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/spiffe"
)

// Rule sources, as intentions write them.
const wildcard = "*"

// Specificity of a rule's source: a named service beats a namespace's
// "*", which beats "*".
const (
	specService   = 4
	specNamespace = 2
	specAny       = 0
)

// Rules are an inbound listener's compiled authorization rules.
type Rules struct {
	trustDomain  string // a caller from any other is refused
	namespace    string // this service's: a rule without a source namespace names callers in it
	service      string // this service: the destination of every call
	defaultAllow bool
	rules        []Rule
}

// Rule is one compiled meshapi.AuthzRule.
type Rule struct {
	source, sourceNS string
	spec             int  // specificity of the source
	allow            bool // for a connection: with permissions, whether any allows
	perms            []Permission
}

// Permission is a compiled meshapi.Permission.
type Permission struct {
	Allow bool
	Match *canon.Matcher // nil: every request
	JWT   *meshapi.JwtMatch
}

// CompilePermissions compiles the L7 permissions of r, or says which one
// is wrong.
func CompilePermissions(r *meshapi.AuthzRule) ([]Permission, error) {
	var out []Permission
	for i, p := range r.GetPermissions() {
		perm := Permission{Allow: p.GetAction() == meshapi.Action_ACTION_ALLOW, JWT: p.GetJwt()}
		if perm.JWT != nil && perm.JWT.GetProvider() == "" {
			return nil, fmt.Errorf("permission %d: its jwt match names no provider", i)
		}
		if p.GetMatch() != nil {
			m, err := canon.Compile(p.GetMatch())
			if err != nil {
				return nil, fmt.Errorf("permission %d: %w", i, err)
			}
			perm.Match = m
		}
		out = append(out, perm)
	}
	return out, nil
}

// New compiles a's rules for an instance of cfg's service. Its trust
// domain and namespace come from its own identity, own, falling back to
// the configuration. A permission that does not compile is left out:
// check the rules with CompilePermissions first.
func New(a *meshapi.Authz, cfg *meshapi.ProxyConfig, own string) *Rules {
	td, ns := cfg.GetTrustDomain(), cfg.GetNamespace()
	if id, err := spiffe.Parse(own); err == nil {
		td, ns = id.TrustDomain, id.Namespace
	}
	if ns == "" {
		ns = model.DefaultNamespace
	}
	az := &Rules{trustDomain: td, namespace: ns, service: cfg.GetService(), defaultAllow: a.GetDefaultAction() == meshapi.Action_ACTION_ALLOW}
	for _, r := range a.GetRules() {
		perms, _ := CompilePermissions(r)
		ar := Rule{source: r.GetSource(), sourceNS: r.GetSourceNamespace(), perms: perms}
		switch {
		case ar.source != wildcard:
			ar.spec = specService
		case ar.sourceNS != wildcard:
			// "ns/*"; and "*" written without a namespace, which
			// policy.WinnerFor ranks the same (it still matches any
			// namespace, see matches).
			ar.spec = specNamespace
		default:
			ar.spec = specAny
		}
		if len(r.GetPermissions()) == 0 {
			ar.allow = r.GetAction() == meshapi.Action_ACTION_ALLOW
		} else {
			for _, p := range r.GetPermissions() {
				ar.allow = ar.allow || p.GetAction() == meshapi.Action_ACTION_ALLOW
			}
		}
		az.rules = append(az.rules, ar)
	}
	return az
}

// Name is the rule's source as a policy author writes it: "svc", "ns/svc",
// "ns/*" or "*".
func (r *Rule) Name() string {
	if r.sourceNS == "" || (r.sourceNS == wildcard && r.source == wildcard) {
		return r.source
	}
	return r.sourceNS + "/" + r.source
}

// matches reports whether the rule names caller, a service in namespace
// ns; dstNS is this service's namespace. A "*" source written without a
// namespace is any namespace, as it always was.
func (r *Rule) matches(ns, svc, dstNS string) bool {
	if svc == "" && r.source != wildcard {
		return false
	}
	switch {
	case r.sourceNS == wildcard, r.sourceNS == "" && r.source == wildcard:
		// any namespace
	case r.sourceNS == "":
		if ns != dstNS {
			return false
		}
	default:
		if ns != r.sourceNS {
			return false
		}
	}
	return r.source == wildcard || r.source == svc
}

// Winner is the rule that decides for caller, or nil when the default
// does: the most specific source, deny first among equals. ok is false for
// a caller from another trust domain, which nothing may allow.
func (az *Rules) Winner(caller spiffe.Identity) (win *Rule, ok bool) {
	if caller.TrustDomain != az.trustDomain {
		return nil, false
	}
	best := -1
	for i := range az.rules {
		r := &az.rules[i]
		if !r.matches(caller.Namespace, caller.Service, az.namespace) {
			continue
		}
		if r.spec > best || (r.spec == best && !r.allow && win.allow) {
			best, win = r.spec, r
		}
	}
	return win, true
}

// Inputs adds the header and query parameter names the rules' permissions
// read (canon.Matcher.Inputs).
func (az *Rules) Inputs(headers, query map[string]bool) {
	for _, r := range az.rules {
		for _, p := range r.perms {
			if p.Match != nil {
				p.Match.Inputs(headers, query)
			}
		}
	}
}

// otherDomain is the refusal for a caller from another trust domain.
func (az *Rules) otherDomain(caller spiffe.Identity) string {
	return fmt.Sprintf("weft: %s may not call %s: it is not in this mesh's trust domain %q, and no intention or default allows another trust domain",
		caller, az.service, az.trustDomain)
}

// Authorize reports whether caller may call this service, and if not, a
// message for the caller saying why and what to do.
func (az *Rules) Authorize(caller spiffe.Identity) (bool, string) {
	win, ok := az.Winner(caller)
	if !ok {
		return false, az.otherDomain(caller)
	}
	allow := az.defaultAllow
	if win != nil {
		allow = win.allow
	}
	if allow {
		return true, ""
	}
	from := caller.Namespace + "/" + caller.Service
	if win != nil {
		return false, fmt.Sprintf("weft: %s may not call %s: the intention from %q to %q denies service %q", caller, az.service, win.Name(), az.service, from)
	}
	return false, fmt.Sprintf("weft: %s may not call %s: no intention allows it and the default is deny; add an intention from %q to %q", caller, az.service, from, az.service)
}

// AuthorizeRequest is Authorize for one HTTP request, in canonical form
// (canon.Canonicalize): when the rule that decides for the caller has
// permissions, the first that matches r decides, and a request none
// matches gets the default action. query is r's parsed query, or nil.
func (az *Rules) AuthorizeRequest(caller spiffe.Identity, r *http.Request, query url.Values) (bool, string) {
	ok, why, _ := az.AuthorizeRequestJWT(caller, r, query, nil)
	return ok, why
}

// AuthorizeRequestJWT is AuthorizeRequest for a request whose valid end-user
// tokens carried claims (by provider; jwtauth.Result.Claims): a permission
// with a jwt match matches only when the request's token of its provider
// has the claims it names. When it refuses, unauthenticated says that a
// permission that would have allowed the request matched it but for a
// token of its provider the request lacks, and names that provider: the
// answer is then 401, not 403.
func (az *Rules) AuthorizeRequestJWT(caller spiffe.Identity, r *http.Request, query url.Values, claims map[string]map[string]any) (ok bool, why string, needsToken string) {
	win, ok := az.Winner(caller)
	if !ok {
		return false, az.otherDomain(caller), ""
	}
	if win == nil || len(win.perms) == 0 {
		ok, why := az.Authorize(caller)
		return ok, why, ""
	}
	for i, p := range win.perms {
		if p.Match != nil && !p.Match.Match(r, query) {
			continue
		}
		if p.JWT != nil {
			tok := claims[p.JWT.GetProvider()]
			if tok == nil && p.Allow && needsToken == "" {
				needsToken = p.JWT.GetProvider()
			}
			if !JWTHolds(p.JWT, tok) {
				continue
			}
		}
		if p.Allow {
			return true, "", ""
		}
		return false, fmt.Sprintf("weft: %s may not %s %s on %s: permission %d of the intention from %q to %q denies it",
			caller, r.Method, r.URL.Path, az.service, i+1, win.Name(), az.service), needsToken
	}
	if az.defaultAllow {
		return true, "", ""
	}
	if needsToken != "" {
		return false, fmt.Sprintf("weft: %s may not %s %s on %s without an end-user token: a permission of the intention from %q to %q allows it with a valid JWT",
			caller, r.Method, r.URL.Path, az.service, win.Name(), az.service), needsToken
	}
	return false, fmt.Sprintf("weft: %s may not %s %s on %s: no permission of the intention from %q to %q matches and the default is deny",
		caller, r.Method, r.URL.Path, az.service, win.Name(), az.service), ""
}

// JWTHolds reports whether a valid token's claims (nil: the request has no
// valid token of m's provider) satisfy m: every claim m names is one of
// its values (a string equal to one, a list with an element equal to one,
// a number or boolean spelled as one); a name that is no claim but has
// dots names a nested claim. policy.JWTClaimHolds decides the same way.
func JWTHolds(m *meshapi.JwtMatch, claims map[string]any) bool {
	if claims == nil {
		return false
	}
	for _, c := range m.GetClaims() {
		if !claimHolds(claims, c.GetName(), c.GetValues()) {
			return false
		}
	}
	return true
}

func claimHolds(claims map[string]any, name string, values []string) bool {
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
			if s, scalar := scalarString(e); scalar && slices.Contains(values, s) {
				return true
			}
		}
		return false
	}
	s, scalar := scalarString(v)
	return scalar && slices.Contains(values, s)
}

func scalarString(v any) (string, bool) {
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
