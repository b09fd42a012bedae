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

// TestCompilerKeepsProxyModeDrops: the Compiler's Undeclared lists the
// same proxy-mode drops as ProxyModeDrops, after whole updates and after
// changes alone (the controller's delta path reads only Undeclared).
func TestCompilerKeepsProxyModeDrops(t *testing.T) {
	p := &policy.Policy{Services: map[string]policy.Service{
		"api": {Name: "api", ProxyMode: policy.ProxyInstance},
		"web": {Name: "web", ProxyMode: policy.ProxyNode},
	}}
	inst := func(id, svc, mode string) registry.Entry {
		in := model.Instance{ID: id, Service: svc, Address: "127.0.0.1", Ports: map[string]int{"mesh": 9000}}
		if mode != "" {
			in.Meta = map[string]string{model.MetaProxyMode: mode}
		}
		return registry.Entry{Adapter: "local", Instance: in}
	}
	reasons := func(ds []model.Dropped) map[string]string {
		out := map[string]string{}
		for _, d := range ds {
			if d.Reason == ReasonProxyModeRefused || d.Reason == ReasonProxyModeMismatch {
				out[d.Instance] = d.Reason
			}
		}
		return out
	}
	entries := []registry.Entry{inst("api-0", "api", "node"), inst("api-1", "api", ""), inst("web-0", "web", "")}
	c := NewCompiler()
	c.Update(p, entries)
	got := reasons(c.Undeclared())
	if want := reasons(ProxyModeDrops(p, entries)); len(want) != 2 || !equalMaps(got, want) {
		t.Fatalf("after Update: %v, ProxyModeDrops %v (want api-0 refused, web-0 mismatch)", got, want)
	}
	// api-0 moves to a sidecar, web-0 to the node proxy, api-2 arrives on
	// a node proxy: each change alone.
	changed := []registry.Entry{inst("api-0", "api", ""), inst("web-0", "web", "node"), inst("api-2", "api", "node")}
	if _, ok := c.UpdateChanged(p, changed, nil); !ok {
		t.Fatal("UpdateChanged refused the same policy")
	}
	all := []registry.Entry{changed[0], entries[1], changed[1], changed[2]}
	got = reasons(c.Undeclared())
	if want := reasons(ProxyModeDrops(p, all)); !equalMaps(got, want) || got["api-2"] != ReasonProxyModeRefused || len(got) != 1 {
		t.Fatalf("after UpdateChanged: %v, ProxyModeDrops %v (want only api-2 refused)", got, want)
	}
	if _, ok := c.UpdateChanged(p, nil, []registry.Key{{Adapter: "local", ID: "api-2"}}); !ok {
		t.Fatal("UpdateChanged refused the same policy")
	}
	if got := reasons(c.Undeclared()); len(got) != 0 {
		t.Fatalf("after api-2 left: %v, want none", got)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
