package compile

import (
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// TestUnboundLeftOut: an instance of a second local workload claiming
// "api" is in no caller's endpoint set in strict mode, and Unbound names
// it; in permissive mode it is served and still named.
func TestUnboundLeftOut(t *testing.T) {
	impostor := entry("impostor-0", "api", "127.0.0.9", model.HealthPassing)
	impostor.Instance.Workload["name"] = "impostor"
	nameless := entry("nameless-0", "api", "127.0.0.10", model.HealthPassing)
	nameless.Instance.Workload = nil
	entries := []registry.Entry{
		entry("api-0", "api", "127.0.0.3", model.HealthPassing),
		entry("frontend-0", "frontend", "127.0.0.2", model.HealthPassing),
		impostor, nameless,
	}
	endpoints := func(p *policy.Policy) []string {
		var ids []string
		for _, ep := range Compile(p, entries)["frontend-0"].Upstreams[0].Endpoints {
			ids = append(ids, ep.InstanceId)
		}
		return ids
	}
	for _, tc := range []struct {
		mode policy.BindingMode
		want []string
	}{
		{"", []string{"api-0"}},
		{policy.BindingStrict, []string{"api-0"}},
		{policy.BindingPermissive, []string{"api-0", "impostor-0", "nameless-0"}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			p := demoPolicy()
			p.Mesh.IdentityBinding = tc.mode
			if got := endpoints(p); !slices.Equal(got, tc.want) {
				t.Errorf("frontend's api endpoints %v, want %v", got, tc.want)
			}
			un := Unbound(p, entries)
			var ids []string
			for _, u := range un {
				ids = append(ids, u.Instance)
				if u.Reason != ReasonUnbound || u.Service != "api" || u.Adapter != "local" {
					t.Errorf("skipped %+v: want reason %q, service api, adapter local", u, ReasonUnbound)
				}
			}
			if !slices.Equal(ids, []string{"impostor-0", "nameless-0"}) {
				t.Errorf("Unbound names %v, want impostor-0 and nameless-0", ids)
			}
			if !strings.Contains(un[0].Detail, `binding "local" { name = "impostor" }`) {
				t.Errorf("detail %q does not give the binding to add", un[0].Detail)
			}
		})
	}
}

// TestAuthzNamespaces: every compiled rule names its namespace; a source
// written without one is the destination's.
func TestAuthzNamespaces(t *testing.T) {
	p := &policy.Policy{
		Mesh:     policy.Mesh{TrustDomain: "t", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{"api": {Name: "api", Namespace: "shop"}},
		Intentions: []policy.Intention{
			{Source: "web", Destination: "api", Action: policy.Allow},
			{Source: "web", SourceNamespace: "default", Destination: "api", Action: policy.Allow},
			{Source: "bad", SourceNamespace: "ops", Destination: "api", Action: policy.Deny},
			{Source: policy.Wildcard, SourceNamespace: "ops", Destination: "api", Action: policy.Allow},
			{Source: policy.Wildcard, SourceNamespace: policy.Wildcard, Destination: policy.Wildcard, Action: policy.Deny},
		},
	}
	var got []string
	for _, r := range authz(p, "api").Rules {
		got = append(got, r.SourceNamespace+"/"+r.Source+"="+r.Action.String())
	}
	want := []string{
		"ops/bad=ACTION_DENY", "default/web=ACTION_ALLOW", "shop/web=ACTION_ALLOW",
		"ops/*=ACTION_ALLOW", "*/*=ACTION_DENY",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules\n  %v\nwant\n  %v", got, want)
	}
	if a := authz(p, "api"); a.DefaultAction != meshapi.Action_ACTION_DENY {
		t.Errorf("default %v", a.DefaultAction)
	}
}
