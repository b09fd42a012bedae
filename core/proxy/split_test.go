package proxy

import (
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
)

func TestEmptySubsetsGiveTheirShareToTheOthers(t *testing.T) {
	eps := func(subsets ...[]string) ([]*meshapi.Endpoint, []*endpoint) {
		var m []*meshapi.Endpoint
		var e []*endpoint
		for i, s := range subsets {
			m = append(m, &meshapi.Endpoint{InstanceId: string(rune('a' + i)), Address: "127.0.0.1", Port: uint32(20000 + i), Subsets: s})
			e = append(e, &endpoint{})
		}
		return m, e
	}
	split := func(subset string, w uint32) *meshapi.Split { return &meshapi.Split{Subset: subset, Weight: w} }
	noLB := func([]*endpoint) balancer { return nil }

	tests := []struct {
		name      string
		endpoints [][]string
		splits    []*meshapi.Split
		want      map[string]int // subset -> weight it ends up with
	}{
		{"both subsets have instances", [][]string{{"v1"}, {"v2"}}, []*meshapi.Split{split("v1", 80), split("v2", 20)}, map[string]int{"v1": 80, "v2": 20}},
		{"the canary subset emptied", [][]string{{"v1"}, {"v1"}}, []*meshapi.Split{split("v1", 80), split("canary", 20)}, map[string]int{"v1": 80}},
		{"the stable subset emptied after promotion", [][]string{{"v2"}}, []*meshapi.Split{split("v1", 80), split("v2", 20)}, map[string]int{"v2": 20}},
		{"every subset empty keeps the splits", [][]string{{"other"}}, []*meshapi.Split{split("v1", 80), split("v2", 20)}, map[string]int{"v1": 80, "v2": 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, e := eps(tc.endpoints...)
			up := &meshapi.Upstream{Name: "api", Endpoints: m, Routes: []*meshapi.Route{{Name: "r", Splits: tc.splits}}}
			routes, err := compileRoutes(up, e, noLB, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			prev := 0
			for _, p := range routes[0].splits {
				got[p.subset] = p.upTo - prev
				prev = p.upTo
			}
			if len(got) != len(tc.want) || routes[0].total != prev {
				t.Fatalf("splits = %v (total %d), want %v", got, routes[0].total, tc.want)
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("split %s has weight %d, want %d (all: %v)", k, got[k], w, got)
				}
			}
			// Every pick lands on a split that has instances, when one does.
			for n := 0; n < routes[0].total; n++ {
				p := routes[0].pick(func(int) int { return n })
				if len(p.eps) == 0 && len(tc.want) < len(tc.splits) {
					t.Errorf("pick(%d) chose the empty split %s", n, p.subset)
				}
			}
		})
	}
}
