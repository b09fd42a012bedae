package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/authz"
	"github.com/weftmesh/weft/core/spiffe"
)

// TestAuthorizeNamespaces evaluates compiled rules against callers the way
// the inbound listener does: by the namespace and service of the caller's
// SPIFFE ID, in this mesh's trust domain only.
func TestAuthorizeNamespaces(t *testing.T) {
	allow, deny := meshapi.Action_ACTION_ALLOW, meshapi.Action_ACTION_DENY
	rule := func(ns, src string, a meshapi.Action) *meshapi.AuthzRule {
		return &meshapi.AuthzRule{Source: src, SourceNamespace: ns, Action: a}
	}
	caller := func(td, ns, svc string) spiffe.Identity {
		return spiffe.Identity{TrustDomain: td, Namespace: ns, Service: svc}
	}
	const td = "weft.local"
	tests := []struct {
		name   string
		def    meshapi.Action
		rules  []*meshapi.AuthzRule
		caller spiffe.Identity
		want   bool
		says   string // in the refusal
	}{
		{"the named caller", deny, []*meshapi.AuthzRule{rule("default", "frontend", allow)}, caller(td, "default", "frontend"), true, ""},
		{"the same service name in another namespace", deny, []*meshapi.AuthzRule{rule("default", "frontend", allow)}, caller(td, "evil", "frontend"), false, "no intention allows it"},
		{"a rule from a controller before namespaces: the destination's namespace", deny, []*meshapi.AuthzRule{rule("", "frontend", allow)}, caller(td, "evil", "frontend"), false, ""},
		{"a rule from a controller before namespaces, right namespace", deny, []*meshapi.AuthzRule{rule("", "frontend", allow)}, caller(td, "default", "frontend"), true, ""},
		{"* is any namespace", deny, []*meshapi.AuthzRule{rule("*", "*", allow)}, caller(td, "evil", "anything"), true, ""},
		{"* without a namespace is any namespace", deny, []*meshapi.AuthzRule{rule("", "*", allow)}, caller(td, "evil", "anything"), true, ""},
		{"a namespace's rule over *", deny, []*meshapi.AuthzRule{rule("*", "*", allow), rule("evil", "*", deny)}, caller(td, "evil", "frontend"), false, `intention from "evil/*"`},
		{"a service's rule over its namespace's", deny, []*meshapi.AuthzRule{rule("evil", "*", deny), rule("evil", "ok", allow)}, caller(td, "evil", "ok"), true, ""},
		{"another trust domain never matches a named rule", deny, []*meshapi.AuthzRule{rule("default", "frontend", allow)}, caller("other.td", "default", "frontend"), false, "trust domain"},
		{"another trust domain never matches *", deny, []*meshapi.AuthzRule{rule("*", "*", allow)}, caller("other.td", "default", "frontend"), false, "trust domain"},
		{"another trust domain is refused under default allow", allow, nil, caller("other.td", "default", "frontend"), false, "trust domain"},
		{"default allow in this trust domain", allow, nil, caller(td, "evil", "frontend"), true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &meshapi.Authz{DefaultAction: tc.def, Rules: tc.rules}
			cfg := &meshapi.ProxyConfig{Service: "api", Namespace: "default", TrustDomain: td}
			st := &inboundState{service: "api", authz: authz.New(a, cfg, spiffe.ID(td, "default", "api"))}
			ok, why := st.authorize(tc.caller)
			if ok != tc.want {
				t.Fatalf("authorize(%s) = %v (%s), want %v", tc.caller, ok, why, tc.want)
			}
			if !strings.Contains(why, tc.says) {
				t.Errorf("refusal %q does not say %q", why, tc.says)
			}
			r := httptest.NewRequest("GET", "/x", nil)
			if ok, _ := st.authorizeRequest(tc.caller, r, nil); ok != tc.want {
				t.Errorf("authorizeRequest(%s) = %v, want %v", tc.caller, ok, tc.want)
			}
		})
	}
}

// TestAuthorizeRequestPermissionsByNamespace: the L7 permissions of a
// rule apply to the callers that rule names, not to a caller of the same
// service name from another namespace.
func TestAuthorizeRequestPermissionsByNamespace(t *testing.T) {
	const td = "weft.local"
	a := &meshapi.Authz{DefaultAction: meshapi.Action_ACTION_DENY, Rules: []*meshapi.AuthzRule{
		{Source: "web", SourceNamespace: "default", Permissions: []*meshapi.Permission{{Action: meshapi.Action_ACTION_ALLOW}}},
		{Source: "web", SourceNamespace: "evil", Permissions: []*meshapi.Permission{{Action: meshapi.Action_ACTION_DENY}}},
	}}
	cfg := &meshapi.ProxyConfig{Service: "api", Namespace: "default", TrustDomain: td}
	st := &inboundState{service: "api", authz: authz.New(a, cfg, "")}
	for _, tc := range []struct {
		ns   string
		want bool
	}{{"default", true}, {"evil", false}, {"other", false}} {
		ok, why := st.authorizeRequest(spiffe.Identity{TrustDomain: td, Namespace: tc.ns, Service: "web"}, httptest.NewRequest("GET", "/", nil), nil)
		if ok != tc.want {
			t.Errorf("%s/web: %v (%s), want %v", tc.ns, ok, why, tc.want)
		}
	}
}
