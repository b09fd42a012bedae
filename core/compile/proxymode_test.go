package compile

import (
	"testing"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

func TestProxyModeDrops(t *testing.T) {
	entry := func(adapter, id, svc, mode string) registry.Entry {
		in := model.Instance{ID: id, Service: svc}
		if mode != "" {
			in.Meta = map[string]string{model.MetaProxyMode: mode}
		}
		return registry.Entry{Adapter: adapter, Instance: in}
	}
	entries := []registry.Entry{
		entry("nomad", "a1/api", "api", "node"), // agrees
		entry("nomad", "a2/pay", "pay", "node"), // policy: instance
		entry("local", "web-0", "web", ""),      // a sidecar, policy: node
		entry("local", "store-0", "store", ""),  // policy silent on store: the mesh default below
		entry("local", "batch-0", "batch", "application"),
	}
	tests := []struct {
		name    string
		p       *policy.Policy
		want    []string // instance IDs listed
		reasons []string
	}{
		{"policy silent", &policy.Policy{Services: map[string]policy.Service{"api": {Name: "api"}}}, nil, nil},
		{"per service", &policy.Policy{Services: map[string]policy.Service{
			"api": {ProxyMode: policy.ProxyNode}, "pay": {ProxyMode: policy.ProxyInstance}, "web": {ProxyMode: policy.ProxyNode},
			"batch": {ProxyMode: policy.ProxyApplication},
		}}, []string{"a2/pay", "web-0"}, []string{ReasonProxyModeRefused, ReasonProxyModeMismatch}},
		{"mesh default node", &policy.Policy{Mesh: policy.Mesh{DefaultProxyMode: policy.ProxyNode}}, []string{"web-0", "store-0", "batch-0"}, []string{ReasonProxyModeMismatch, ReasonProxyModeMismatch, ReasonProxyModeRefused}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ProxyModeDrops(tt.p, entries)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want instances %v", got, tt.want)
			}
			for i, d := range got {
				if d.Instance != tt.want[i] || d.Reason != tt.reasons[i] || d.Detail == "" || d.Adapter == "" {
					t.Errorf("drop %d = %+v, want instance %s with reason %s and a detail", i, d, tt.want[i], tt.reasons[i])
				}
			}
		})
	}
}
