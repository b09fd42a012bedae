package policy

import (
	"strings"
	"testing"
)

// A plan names a new external service, its flows from callers (never from
// it: it calls nothing in the mesh), a change of its TLS, and the mesh's
// egress mode.
func TestDiffExternal(t *testing.T) {
	ext := func(sni string) Service {
		return Service{Name: "payments", External: &External{Host: "api.example", Port: 443, TLS: &ExternalTLS{CAFile: "ca.pem", SNI: sni}}}
	}
	old := &Policy{Mesh: Mesh{TrustDomain: "t", DefaultAction: Allow}, Services: map[string]Service{"web": {Name: "web"}}}
	new := &Policy{Mesh: Mesh{TrustDomain: "t", DefaultAction: Allow, Egress: EgressDeny},
		Services: map[string]Service{"web": {Name: "web"}, "payments": ext("")}}
	pl := Diff(old, new)
	var flows []string
	for _, f := range pl.Flows {
		flows = append(flows, f.Source+">"+f.Destination)
	}
	if strings.Join(flows, " ") != "web>payments" {
		t.Errorf("flows = %v, want web>payments only", flows)
	}
	if len(pl.Mesh) != 1 || pl.Mesh[0] != "egress: allow => deny" {
		t.Errorf("mesh changes = %v, want the egress mode", pl.Mesh)
	}
	newer := &Policy{Mesh: new.Mesh, Services: map[string]Service{"web": {Name: "web"}, "payments": ext("edge.example")}}
	pl = Diff(new, newer)
	if len(pl.Services) != 1 || strings.Join(pl.Services[0].Fields, ",") != "external" {
		t.Errorf("service changes = %+v, want payments' external", pl.Services)
	}
	if e := newer.Services["payments"].External; e.ServerName() != "edge.example" || e.DialAddress() != "api.example" {
		t.Errorf("server name %q, dial address %q", e.ServerName(), e.DialAddress())
	}
}
