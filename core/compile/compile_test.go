package compile

import (
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

func entry(id, svc, addr string, health model.Health) registry.Entry {
	return registry.Entry{Adapter: "local", Instance: model.Instance{
		ID: id, Service: svc, Namespace: "default", Address: addr, Health: health,
		Ports:    map[string]int{model.PortApp: 8080, model.PortMesh: 15001},
		Workload: map[string]string{model.WorkloadScheduler: "local", "name": svc},
	}}
}

func demoPolicy() *policy.Policy {
	return &policy.Policy{
		Mesh: policy.Mesh{TrustDomain: "weft.local", DefaultAction: policy.Deny},
		Services: map[string]policy.Service{
			"frontend": {Name: "frontend", Protocol: policy.HTTP, Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001, LB: policy.LeastRequest}}, Bindings: localBinding("frontend")},
			"api":      {Name: "api", Protocol: policy.GRPC, Bindings: localBinding("api")},
		},
		Intentions: []policy.Intention{{Source: "frontend", Destination: "api", Action: policy.Allow}},
	}
}

func localBinding(name string) []policy.Binding {
	return []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": name}}}
}

func TestCompile(t *testing.T) {
	entries := []registry.Entry{
		entry("api-0", "api", "127.0.0.3", model.HealthPassing),
		entry("api-1", "api", "127.0.0.4", model.HealthCritical),
		entry("api-2", "api", "127.0.0.5", model.HealthUnknown),
		entry("frontend-0", "frontend", "127.0.0.2", model.HealthPassing),
		entry("lonely-0", "lonely", "127.0.0.6", model.HealthPassing),
	}
	got := Compile(demoPolicy(), entries)
	if len(got) != 5 {
		t.Fatalf("got %d configs, want 5", len(got))
	}
	fe := got["frontend-0"]
	if fe.SpiffeId != "spiffe://weft.local/ns/default/svc/frontend" {
		t.Errorf("frontend SPIFFE ID = %q", fe.SpiffeId)
	}
	if fe.Inbound.BindAddress != "127.0.0.2" || fe.Inbound.Port != 15001 || fe.Inbound.AppPort != 8080 || fe.Inbound.Protocol != meshapi.Protocol_PROTOCOL_HTTP {
		t.Errorf("frontend inbound = %v", fe.Inbound)
	}
	if len(fe.Upstreams) != 1 {
		t.Fatalf("frontend upstreams = %v", fe.Upstreams)
	}
	up := fe.Upstreams[0]
	if up.SpiffeId != "spiffe://weft.local/ns/default/svc/api" || up.LocalPort != 9001 || up.BindAddress != "127.0.0.2" ||
		up.Protocol != meshapi.Protocol_PROTOCOL_GRPC || up.Lb != meshapi.LB_LB_LEAST_REQUEST {
		t.Errorf("frontend upstream = %v", up)
	}
	var ids []string
	for _, e := range up.Endpoints {
		ids = append(ids, e.InstanceId)
	}
	if len(ids) != 2 || ids[0] != "api-0" || ids[1] != "api-2" {
		t.Errorf("endpoints = %v, want api-0 and api-2 (api-1 is critical)", ids)
	}
	api := got["api-0"]
	if api.Inbound.Authz.DefaultAction != meshapi.Action_ACTION_DENY || len(api.Inbound.Authz.Rules) != 1 ||
		api.Inbound.Authz.Rules[0].Source != "frontend" || api.Inbound.Authz.Rules[0].Action != meshapi.Action_ACTION_ALLOW {
		t.Errorf("api authz = %v", api.Inbound.Authz)
	}
	// A scheduler-allocated upstream port wins over the policy's local_port.
	fe2 := entry("frontend-1", "frontend", "127.0.0.1", model.HealthPassing)
	fe2.Instance.Ports["upstream:api"] = 23456
	if got := Compile(demoPolicy(), []registry.Entry{fe2})["frontend-1"].Upstreams[0].LocalPort; got != 23456 {
		t.Errorf("upstream port with an instance override = %d, want 23456", got)
	}
	lonely := got["lonely-0"]
	if lonely.Inbound.Protocol != meshapi.Protocol_PROTOCOL_TCP || len(lonely.Upstreams) != 0 {
		t.Errorf("service without policy: %v", lonely)
	}
}

// sidecarDecide evaluates compiled rules the way the sidecar does.
func sidecarDecide(a *meshapi.Authz, caller string) meshapi.Action {
	var wild *meshapi.AuthzRule
	for _, r := range a.Rules {
		if r.Source == caller {
			return r.Action
		}
		if r.Source == policy.Wildcard {
			wild = r
		}
	}
	if wild != nil {
		return wild.Action
	}
	return a.DefaultAction
}

func TestAuthzMatchesDecide(t *testing.T) {
	in := func(s, d string, a policy.Action) policy.Intention {
		return policy.Intention{Source: s, Destination: d, Action: a}
	}
	cases := []struct {
		name       string
		def        policy.Action
		intentions []policy.Intention
	}{
		{"none, deny", policy.Deny, nil},
		{"none, allow", policy.Allow, nil},
		{"exact allow", policy.Deny, []policy.Intention{in("a", "api", policy.Allow)}},
		{"wildcard source allow, exact deny", policy.Deny, []policy.Intention{in("*", "api", policy.Allow), in("a", "api", policy.Deny)}},
		{"wildcard destination deny, exact allow", policy.Allow, []policy.Intention{in("a", "*", policy.Deny), in("a", "api", policy.Allow)}},
		{"both wildcards deny, exact allow", policy.Allow, []policy.Intention{in("*", "*", policy.Deny), in("b", "api", policy.Allow)}},
		{"wildcard source to api beats all-wildcard", policy.Deny, []policy.Intention{in("*", "*", policy.Deny), in("*", "api", policy.Allow)}},
		{"intention for another destination", policy.Deny, []policy.Intention{in("a", "store", policy.Allow)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &policy.Policy{Mesh: policy.Mesh{TrustDomain: "t", DefaultAction: tc.def}, Intentions: tc.intentions}
			a := authz(p, "api")
			for _, caller := range []string{"a", "b", "c", "api"} {
				want, _ := p.Decide(caller, "api")
				if got := sidecarDecide(a, caller); got != action(want) {
					t.Errorf("caller %s: sidecar rules give %v, policy.Decide gives %v (rules %v)", caller, got, want, a.Rules)
				}
			}
		})
	}
}
