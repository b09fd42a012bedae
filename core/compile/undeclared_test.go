package compile

import (
	"slices"
	"testing"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

func TestUndeclaredUpstreams(t *testing.T) {
	p := &policy.Policy{Services: map[string]policy.Service{
		"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}},
	}}
	for _, tc := range []struct {
		name    string
		service string
		ports   map[string]int
		want    []string
	}{
		{"declared", "web", map[string]int{"mesh": 1, "upstream:api": 2}, nil},
		{"undeclared", "web", map[string]int{"mesh": 1, "upstream:api": 2, "upstream:store": 3, "upstream:db": 4}, []string{"db", "store"}},
		{"service absent from the policy", "batch", map[string]int{"upstream:api": 2}, []string{"api"}},
		{"prefix only", "web", map[string]int{"upstream:": 2}, []string{""}},
		{"not an upstream port", "web", map[string]int{"upstreamapi": 2, "Upstream:api": 3}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UndeclaredUpstreams(p, tc.service, tc.ports); !slices.Equal(got, tc.want) {
				t.Errorf("UndeclaredUpstreams = %q, want %q", got, tc.want)
			}
		})
	}
	drops := UndeclaredDrops(p, []registry.Entry{{Adapter: "nomad", Instance: model.Instance{ID: "w1", Service: "web", Ports: map[string]int{"upstream:store": 3}}}})
	if len(drops) != 1 || drops[0].Reason != model.ReasonUndeclaredUpstream || drops[0].Instance != "w1" || drops[0].Adapter != "nomad" {
		t.Fatalf("UndeclaredDrops = %+v", drops)
	}
}
