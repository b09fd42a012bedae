package proxy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/proxy/authz"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

// The sidecar evaluates the rules the controller compiled (authz.go); the
// controller decides with policy.Decide. These tests compile intentions
// with core/compile, as the controller does, and check that the sidecar's
// evaluator reaches policy.Decide's answer for every caller, and, for
// intentions with permissions, for every request spelling.

const equivTD = "weft.local"

var (
	equivNamespaces = []string{"default", "evil", "ops"}
	equivServices   = []string{"api", "web", "admin", "batch"}
	equivMethods    = []string{"GET", "POST", "DELETE"}
)

// equivSpellings are request targets and the canonical path a rule reads
// for each (doc.go, "Canonical requests").
var equivSpellings = []struct{ target, path string }{
	{"/admin", "/admin"},
	{"/%61dmin", "/admin"},
	{"//admin", "/admin"},
	{"/x/../admin", "/admin"},
	{"/./admin", "/admin"},
	{"/%2e%2e/admin", "/admin"},
	{"/admin;jsessionid=1", "/admin"},
	{"/admin/users", "/admin/users"},
	{"/admin//users", "/admin/users"},
	{"/ADMIN/users", "/ADMIN/users"},
	{"/admin/", "/admin/"},
	{"/public/a", "/public/a"},
	{"/public/../admin", "/admin"},
	{"/", "/"},
}

// equivSidecar compiles pol for one instance of api in namespace dstNS and
// returns the inbound state its sidecar would run.
func equivSidecar(t *testing.T, pol *policy.Policy, dstNS string) *inboundState {
	t.Helper()
	cfgs := compile.Compile(pol, []registry.Entry{{Adapter: "test", Instance: model.Instance{
		ID: "api-1", Service: "api", Namespace: dstNS, Address: "127.0.0.1",
		Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 9000},
	}}})
	cfg := cfgs["api-1"]
	if cfg == nil {
		t.Fatal("compile produced no config for api-1")
	}
	if _, err := listenerSpecs(cfg); err != nil {
		t.Fatalf("the compiled config is invalid: %v", err)
	}
	az := authz.New(cfg.GetInbound().GetAuthz(), cfg, cfg.GetSpiffeId())
	return &inboundState{service: "api", authz: az, inputs: collectRuleInputs(az, nil)}
}

// oracleRequest is the policy's answer for one request: the winning
// intention's first permission that matches (path, methods, and the end
// user's claims by provider when it has a jwt match: policy.JWTMatch.Holds),
// else the default; an intention without permissions decides by its
// action. needsToken says, for a denial, that an allowing permission
// matched but for a token of its provider the request lacks (a 401).
func oracleRequest(pol *policy.Policy, caller, method, path string, claims map[string]map[string]any) (act policy.Action, needsToken bool) {
	in := pol.Winner(caller, "api")
	if in == nil {
		return pol.Mesh.DefaultAction, false
	}
	if len(in.Permissions) == 0 {
		act, _ := pol.Decide(caller, "api")
		return act, false
	}
	for _, p := range in.Permissions {
		m := p.Match
		okPath := true
		switch m.Path.Kind {
		case policy.MatchExact:
			okPath = path == m.Path.Value
		case policy.MatchPrefix:
			okPath = strings.HasPrefix(path, m.Path.Value)
		}
		if !okPath || (len(m.Methods) > 0 && !slices.Contains(m.Methods, method)) {
			continue
		}
		if p.JWT != nil {
			tok := claims[p.JWT.Provider]
			if tok == nil && p.Action == policy.Allow {
				needsToken = true
			}
			if !p.JWT.Holds(tok) {
				continue
			}
		}
		return p.Action, needsToken && p.Action != policy.Allow
	}
	if pol.Mesh.DefaultAction == policy.Allow {
		return policy.Allow, false
	}
	return pol.Mesh.DefaultAction, needsToken
}

// equivTokens are the end users a request may carry (valid tokens'
// claims, by provider), for intentions whose permissions match on them.
var equivTokens = []map[string]map[string]any{
	nil,
	{"corp": {"sub": "a", "role": "admin"}},
	{"corp": {"sub": "b", "role": "user", "groups": []any{"ops", "dev"}}},
	{"corp": {"sub": "c", "realm": map[string]any{"roles": []any{"admin"}}, "level": json.Number("3")}},
	{"other": {"sub": "d", "role": "admin"}},
}

func hasJWT(pol *policy.Policy) bool {
	for _, in := range pol.Intentions {
		for _, p := range in.Permissions {
			if p.JWT != nil {
				return true
			}
		}
	}
	return false
}

// checkEquivalent compares the sidecar and policy.Decide for every caller
// (each namespace and service, and one from another trust domain) and,
// when requests is set, every method and spelling. It returns how many
// decisions it compared.
func checkEquivalent(t *testing.T, pol *policy.Policy, dstNS string, requests bool) int {
	t.Helper()
	st := equivSidecar(t, pol, dstNS)
	n := 0
	for _, ns := range equivNamespaces {
		for _, svc := range append(slices.Clone(equivServices), "other") {
			caller := spiffe.Identity{TrustDomain: equivTD, Namespace: ns, Service: svc}
			want, _ := pol.Decide(ns+"/"+svc, "api")
			got, why := st.authorize(caller)
			n++
			if got != (want == policy.Allow) {
				t.Fatalf("caller %s/%s to %s/api: sidecar says %v (%s), policy.Decide says %s\nintentions: %+v\nrules: %v",
					ns, svc, dstNS, got, why, want, pol.Intentions, st.authz)
			}
			foreign := caller
			foreign.TrustDomain = "other.td"
			if ok, _ := st.authorize(foreign); ok {
				t.Fatalf("caller %s from another trust domain was allowed", foreign)
			}
			if !requests {
				continue
			}
			tokens := equivTokens[:1]
			if hasJWT(pol) {
				tokens = equivTokens
			}
			for _, m := range equivMethods {
				for _, sp := range equivSpellings {
					for _, tok := range tokens {
						r := httptest.NewRequest(m, sp.target, nil)
						if bad := canon.Canonicalize(r); bad != nil {
							t.Fatalf("%s %s refused: %v", m, sp.target, bad)
						}
						q, bad := st.inputs.check(r, st.service)
						if bad != nil {
							t.Fatalf("%s %s refused: %v", m, sp.target, bad)
						}
						want, wantNeeds := oracleRequest(pol, ns+"/"+svc, m, sp.path, tok)
						got, why, needs := st.authz.AuthorizeRequestJWT(caller, r, q, tok)
						n++
						if got != (want == policy.Allow) || (needs != "") != wantNeeds {
							t.Fatalf("caller %s/%s with tokens %v: %s %s (path %s): sidecar says %v, needs a token %q (%s); the policy says %s, needs a token %v\nintentions: %+v",
								ns, svc, tok, m, sp.target, sp.path, got, needs, why, want, wantNeeds, pol.Intentions)
						}
						if tok == nil {
							if got2, _ := st.authorizeRequest(caller, r, q); got2 != got {
								t.Fatalf("AuthorizeRequest and AuthorizeRequestJWT without tokens disagree")
							}
						}
					}
				}
			}
		}
	}
	return n
}

func equivPolicy(dstNS string, def policy.Action, ins ...policy.Intention) *policy.Policy {
	return &policy.Policy{
		JWTProviders: map[string]policy.JWTProvider{
			"corp":  {Name: "corp", Issuer: "https://corp.test", Header: "Authorization"},
			"other": {Name: "other", Issuer: "https://other.test", Header: "Authorization"},
		},
		Mesh:       policy.Mesh{TrustDomain: equivTD, DefaultAction: def},
		Services:   map[string]policy.Service{"api": {Name: "api", Namespace: dstNS, Protocol: policy.HTTP}},
		Intentions: ins,
	}
}

// TestAuthzEquivalentTable: the precedence cases, one by one.
func TestAuthzEquivalentTable(t *testing.T) {
	allow, deny := policy.Allow, policy.Deny
	in := func(ns, src, dst string, a policy.Action, perms ...policy.Permission) policy.Intention {
		if len(perms) > 0 {
			a = ""
		}
		return policy.Intention{Source: src, SourceNamespace: ns, Destination: dst, Action: a, Permissions: perms}
	}
	perm := func(a policy.Action, kind policy.MatchKind, path string, methods ...string) policy.Permission {
		return policy.Permission{Action: a, Match: policy.Match{Path: policy.StringMatch{Kind: kind, Value: path}, Methods: methods}}
	}
	jwtPerm := func(a policy.Action, prefix, claim string, values ...string) policy.Permission {
		p := perm(a, policy.MatchPrefix, prefix)
		p.JWT = &policy.JWTMatch{Provider: "corp"}
		if claim != "" {
			p.JWT.Claims = map[string][]string{claim: values}
		}
		return p
	}
	tests := []struct {
		name string
		def  policy.Action
		ins  []policy.Intention
	}{
		{"default deny, nothing", deny, nil},
		{"default allow, nothing", allow, nil},
		{"a named caller", deny, []policy.Intention{in("", "web", "api", allow)}},
		{"a named caller in another namespace", deny, []policy.Intention{in("evil", "web", "api", allow)}},
		{"* allows, a namespace denies", deny, []policy.Intention{in("*", "*", "*", allow), in("evil", "*", "api", deny)}},
		{"* without a namespace", deny, []policy.Intention{in("", "*", "api", allow)}},
		{"* without a namespace against ns/*", deny, []policy.Intention{in("", "*", "api", allow), in("evil", "*", "api", deny)}},
		{"a service over its namespace", deny, []policy.Intention{in("evil", "*", "api", deny), in("evil", "web", "api", allow)}},
		{"deny wins among equals", allow, []policy.Intention{in("", "web", "api", allow), in("", "web", "*", deny)}},
		{"a named destination over *", deny, []policy.Intention{in("", "web", "*", deny), in("", "web", "api", allow)}},
		{"another destination does not apply", deny, []policy.Intention{in("", "web", "batch", allow)}},
		{"permissions of a named caller", deny, []policy.Intention{in("", "web", "api", "",
			perm(deny, policy.MatchPrefix, "/admin"), perm(allow, "", ""))}},
		{"permissions by method", deny, []policy.Intention{in("*", "*", "api", "",
			perm(allow, policy.MatchExact, "/admin", "GET"), perm(deny, policy.MatchPrefix, "/", "DELETE"))}},
		{"permissions of a namespace, a named caller over them", allow, []policy.Intention{
			in("ops", "*", "api", "", perm(allow, policy.MatchPrefix, "/public")),
			in("ops", "admin", "api", allow)}},
		{"permissions only deny: the connection is denied", allow, []policy.Intention{in("", "web", "api", "", perm(deny, policy.MatchPrefix, "/"))}},
		{"a jwt claim, then deny", deny, []policy.Intention{in("", "web", "api", "",
			jwtPerm(allow, "/admin", "role", "admin"), perm(deny, policy.MatchPrefix, "/admin"), perm(allow, "", ""))}},
		{"any token of a provider, default allow", allow, []policy.Intention{in("*", "*", "api", "",
			jwtPerm(allow, "/", ""), jwtPerm(deny, "/public", "role", "user"))}},
	}
	for _, tc := range tests {
		for _, dstNS := range []string{"default", "ops"} {
			t.Run(tc.name+"/"+dstNS, func(t *testing.T) {
				checkEquivalent(t, equivPolicy(dstNS, tc.def, tc.ins...), dstNS, true)
			})
		}
	}
}

// TestAuthzEquivalentRandom compares the sidecar with policy.Decide for
// thousands of random sets of valid intentions (fixed seeds: a failure
// names its seed), over every caller, method and spelling.
func TestAuthzEquivalentRandom(t *testing.T) {
	sets, decisions := 0, 0
	for seed := range uint64(1000) {
		rng := rand.New(rand.NewPCG(seed, 12))
		dstNS := equivNamespaces[rng.IntN(2)*2] // default or ops
		def := []policy.Action{policy.Allow, policy.Deny}[rng.IntN(2)]
		var ins []policy.Intention
		seen := map[string]bool{}
		for range rng.IntN(7) {
			in := randomIntention(rng)
			key := in.SourceNamespace + "/" + in.Source + ">" + in.Destination
			if seen[key] {
				continue // the policy language refuses two intentions for one pair
			}
			seen[key] = true
			ins = append(ins, in)
		}
		pol := equivPolicy(dstNS, def, ins...)
		ok := t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			decisions += checkEquivalent(t, pol, dstNS, true)
		})
		if !ok {
			break
		}
		sets++
	}
	t.Logf("%d intention sets, %d decisions compared", sets, decisions)
}

func randomIntention(rng *rand.Rand) policy.Intention {
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	var in policy.Intention
	switch rng.IntN(4) {
	case 0: // "*", written with or without a namespace
		in.Source, in.SourceNamespace = "*", pick([]string{"", "*"})
	case 1: // "ns/*"
		in.Source, in.SourceNamespace = "*", pick(equivNamespaces)
	case 2: // "svc": the destination's namespace
		in.Source = pick(equivServices)
	default: // "ns/svc"
		in.Source, in.SourceNamespace = pick(equivServices), pick(equivNamespaces)
	}
	in.Destination = pick([]string{"api", "*", "batch"})
	act := func() policy.Action { return []policy.Action{policy.Allow, policy.Deny}[rng.IntN(2)] }
	if rng.IntN(3) > 0 {
		in.Action = act()
		return in
	}
	for range 1 + rng.IntN(3) {
		var m policy.Match
		switch rng.IntN(3) {
		case 0:
			m.Path = policy.StringMatch{Kind: policy.MatchExact, Value: pick([]string{"/admin", "/admin/users", "/", "/ADMIN/users"})}
		case 1:
			m.Path = policy.StringMatch{Kind: policy.MatchPrefix, Value: pick([]string{"/admin", "/public", "/"})}
		}
		if rng.IntN(2) == 0 {
			m.Methods = []string{pick(equivMethods)}
		}
		perm := policy.Permission{Action: act(), Match: m}
		if rng.IntN(3) == 0 {
			perm.JWT = randomJWTMatch(rng)
		}
		in.Permissions = append(in.Permissions, perm)
	}
	return in
}

// TestAuthzEquivalentGuards pins the precedence both sides must share: a
// namespace's deny beats "*", a named destination beats "*" for the same
// source.
func TestAuthzEquivalentGuards(t *testing.T) {
	pol := equivPolicy("default", policy.Deny,
		policy.Intention{Source: "*", SourceNamespace: "*", Destination: "api", Action: policy.Allow},
		policy.Intention{Source: "*", SourceNamespace: "evil", Destination: "api", Action: policy.Deny},
		policy.Intention{Source: "web", Destination: "api", Action: policy.Allow},
		policy.Intention{Source: "web", Destination: "*", Action: policy.Deny})
	st := equivSidecar(t, pol, "default")
	evil := spiffe.Identity{TrustDomain: equivTD, Namespace: "evil", Service: "batch"}
	if ok, _ := st.authorize(evil); ok {
		t.Fatal("evil/batch allowed: the namespace's deny must beat *")
	}
	web := spiffe.Identity{TrustDomain: equivTD, Namespace: "default", Service: "web"}
	if act, _ := pol.Decide("default/web", "api"); act != policy.Allow {
		t.Fatalf("policy.Decide(default/web) = %s; the named destination beats *", act)
	}
	if ok, why := st.authorize(web); !ok {
		t.Fatalf("default/web refused (%s); policy.Decide allows it", why)
	}
}

func randomJWTMatch(rng *rand.Rand) *policy.JWTMatch {
	m := &policy.JWTMatch{Provider: []string{"corp", "other"}[rng.IntN(2)]}
	switch rng.IntN(5) {
	case 0: // any valid token
	case 1:
		m.Claims = map[string][]string{"role": {"admin"}}
	case 2:
		m.Claims = map[string][]string{"groups": {"ops", "sre"}}
	case 3:
		m.Claims = map[string][]string{"realm.roles": {"admin"}, "level": {"3"}}
	default:
		m.Claims = map[string][]string{"role": {"user", "admin"}, "sub": {"b"}}
	}
	return m
}
