package policy

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/model"
)

func TestProxyModeRule(t *testing.T) {
	pol := func(def ProxyMode, svc map[string]ProxyMode) *Policy {
		p := &Policy{Mesh: Mesh{DefaultProxyMode: def}, Services: map[string]Service{}}
		for name, m := range svc {
			p.Services[name] = Service{Name: name, ProxyMode: m}
		}
		return p
	}
	tests := []struct {
		name string
		p    *Policy
		svc  string
		kind ProxyMode
		// refused is a part of the error, "" for admitted.
		refused string
	}{
		{"policy silent: the scheduler decides", pol("", nil), "api", ProxyNode, ""},
		{"policy silent: an application proxy too", pol("", nil), "api", ProxyApplication, ""},
		{"service in node mode admits the node proxy", pol("", map[string]ProxyMode{"api": ProxyNode}), "api", ProxyNode, ""},
		{"service in node mode refuses an application proxy", pol("", map[string]ProxyMode{"api": ProxyNode}), "api", ProxyApplication, `service "api" sets proxy_mode = "node"`},
		{"service in instance mode refuses the node proxy", pol("", map[string]ProxyMode{"api": ProxyInstance}), "api", ProxyNode, `policy keeps service "api" from node proxies`},
		{"service in application mode admits its proxy", pol(ProxyInstance, map[string]ProxyMode{"api": ProxyApplication}), "api", ProxyApplication, ""},
		{"mesh default instance refuses the node proxy", pol(ProxyInstance, nil), "api", ProxyNode, `the mesh's default_proxy_mode is "instance"`},
		{"mesh default node admits it", pol(ProxyNode, nil), "web", ProxyNode, ""},
		{"the service's mode wins over the mesh's", pol(ProxyNode, map[string]ProxyMode{"api": ProxyInstance}), "api", ProxyNode, `service "api" sets proxy_mode = "instance"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.AdmitShared(tt.svc, tt.kind)
			switch {
			case tt.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.refused != "" && err == nil:
				t.Fatal("admitted, want refused")
			case tt.refused != "" && !strings.Contains(err.Error(), tt.refused):
				t.Fatalf("error %q lacks %q", err, tt.refused)
			}
		})
	}
}

func TestProxyModeMismatch(t *testing.T) {
	inst := func(svc, meta string) model.Instance {
		in := model.Instance{ID: svc + "-0", Service: svc}
		if meta != "" {
			in.Meta = map[string]string{model.MetaProxyMode: meta}
		}
		return in
	}
	p := &Policy{Mesh: Mesh{DefaultProxyMode: ProxyInstance}, Services: map[string]Service{
		"api":   {Name: "api", ProxyMode: ProxyNode},
		"batch": {Name: "batch", ProxyMode: ProxyApplication},
	}}
	tests := []struct {
		name    string
		p       *Policy
		in      model.Instance
		want    string // a part of the mismatch, "" for none
		refused bool
	}{
		{"agree: node", p, inst("api", "node"), "", false},
		{"agree: sidecar by default", p, inst("web", ""), "", false},
		{"agree: the local file's sidecar", p, inst("web", "sidecar"), "", false},
		{"agree: application", p, inst("batch", "application"), "", false},
		{"policy silent", &Policy{}, inst("api", "node"), "", false},
		{"hostile: a node proxy for an instance-mode service", p, inst("web", "node"), "the controller refuses that proxy its certificate", true},
		{"a sidecar where policy says node", p, inst("api", ""), "it keeps its sidecar; move it to the node proxy", false},
		{"the node proxy where policy says application", p, inst("batch", "node"), "serve it by its application's proxy", true},
		{"a mode nobody knows", p, inst("web", "cluster"), `an unknown proxy mode "cluster"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, refused := tt.p.ProxyModeMismatch(tt.in)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) || refused != tt.refused {
				t.Fatalf("mismatch %q (refused %v), want %q (refused %v)", got, refused, tt.want, tt.refused)
			}
		})
	}
}
