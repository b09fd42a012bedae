package compile

import (
	"crypto/tls"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// An upstream to an external service gets the external service's one
// endpoint (never instances that register its name), TLS origination, and
// the intentions to it, which the caller's sidecar applies; the caller's
// config says the mesh's egress mode and which external services it calls.
func TestCompileExternal(t *testing.T) {
	p := &policy.Policy{
		Mesh: policy.Mesh{TrustDomain: "weft.local", DefaultAction: policy.Deny, Egress: policy.EgressDeny},
		Services: map[string]policy.Service{
			"web": {Name: "web", Protocol: policy.HTTP, Bindings: localBinding("web"), Upstreams: []policy.Upstream{
				{Service: "payments", LocalPort: 9100}, {Service: "status", LocalPort: 9101},
			}},
			"payments": {Name: "payments", Namespace: "default", Protocol: policy.HTTP, External: &policy.External{
				Host: "api.payments.example", Address: "127.0.115.10", Port: 443,
				TLS: &policy.ExternalTLS{CAPEM: []byte("pem"), SNI: "edge.payments.example", MinVersion: "1.3"},
			}},
			"status": {Name: "status", Namespace: "default", Protocol: policy.TCP, External: &policy.External{Host: "status.example", Port: 8080}},
		},
		Intentions: []policy.Intention{{Source: "web", Destination: "payments", Action: policy.Allow}},
	}
	got := Compile(p, []registry.Entry{
		entry("web-0", "web", "127.0.0.2", model.HealthPassing),
		entry("impostor-0", "payments", "127.0.0.3", model.HealthPassing), // unbound: never an endpoint
	})
	web := got["web-0"]
	if web.Egress.GetMode() != meshapi.EgressMode_EGRESS_MODE_DENY || len(web.Egress.GetDeclared()) != 2 {
		t.Errorf("egress = %v, want deny with payments and status declared", web.Egress)
	}
	pay := web.Upstreams[0]
	ext := pay.GetExternal()
	if ext == nil {
		t.Fatalf("upstream payments has no external settings: %v", pay)
	}
	if ext.Host != "api.payments.example" || ext.Port != 443 || ext.Tls.GetServerName() != "edge.payments.example" ||
		string(ext.Tls.GetCaPem()) != "pem" || ext.Tls.GetMinVersion() != tls.VersionTLS13 {
		t.Errorf("payments external = %v", ext)
	}
	if len(pay.Endpoints) != 1 || pay.Endpoints[0].Address != "127.0.115.10" || pay.Endpoints[0].Port != 443 ||
		pay.Endpoints[0].InstanceId != "external:payments" {
		t.Errorf("payments endpoints = %v, want the one external endpoint", pay.Endpoints)
	}
	rules := ext.GetAuthz().GetRules()
	if ext.GetAuthz().GetDefaultAction() != meshapi.Action_ACTION_DENY || len(rules) != 1 || rules[0].Source != "web" ||
		rules[0].Action != meshapi.Action_ACTION_ALLOW {
		t.Errorf("payments authz = %v, want web allowed, default deny", ext.GetAuthz())
	}
	st := web.Upstreams[1].GetExternal()
	if st.GetTls() != nil || st.GetHost() != "status.example:8080" || len(st.GetAuthz().GetRules()) != 0 {
		t.Errorf("status external = %v, want plain, Host with its port, no rule (the default denies)", st)
	}
	if ep := web.Upstreams[1].Endpoints; len(ep) != 1 || ep[0].Address != "status.example" {
		t.Errorf("status endpoints = %v, want the host", ep)
	}
	// Without external upstreams and with egress allowed, nothing is added.
	p.Mesh.Egress = ""
	p.Services["web"] = policy.Service{Name: "web", Bindings: localBinding("web")}
	if eg := Compile(p, []registry.Entry{entry("web-0", "web", "127.0.0.2", model.HealthPassing)})["web-0"].Egress; eg != nil {
		t.Errorf("egress = %v, want none", eg)
	}
}
