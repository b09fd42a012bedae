package balance

import (
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
)

func eps(inflight ...int64) []*Endpoint {
	out := make([]*Endpoint, len(inflight))
	for i, n := range inflight {
		out[i] = &Endpoint{ID: string(rune('a' + i)), Addr: string(rune('a' + i))}
		out[i].inflight.Store(n)
	}
	return out
}

// script returns an intn that answers with draws in order.
func script(t *testing.T, draws ...int) func(int) int {
	return func(n int) int {
		if len(draws) == 0 {
			t.Fatal("the Balancer drew more random numbers than expected")
		}
		d := draws[0]
		draws = draws[1:]
		if d >= n {
			t.Fatalf("scripted draw %d is not below %d", d, n)
		}
		return d
	}
}

func ids(es []*Endpoint) string {
	s := ""
	for _, e := range es {
		if e == nil {
			s += "-"
			continue
		}
		s += e.ID
	}
	return s
}

func TestRoundRobin(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		skip  []int
		picks int
		want  string
	}{
		{"in turn", 3, nil, 5, "abcab"},
		{"skips", 3, []int{1}, 4, "acac"},
		{"all skipped", 2, []int{0, 1}, 2, "--"},
		{"no endpoints", 0, nil, 2, "--"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := eps(make([]int64, tc.n)...)
			skip := map[*Endpoint]bool{}
			for _, i := range tc.skip {
				skip[es[i]] = true
			}
			b := New(meshapi.LB_LB_ROUND_ROBIN, es, nil)
			var got []*Endpoint
			for range tc.picks {
				got = append(got, b.Pick(skip))
			}
			if ids(got) != tc.want {
				t.Errorf("picks %s, want %s", ids(got), tc.want)
			}
		})
	}
}

func TestLeastRequest(t *testing.T) {
	cases := []struct {
		name     string
		inflight []int64
		skip     []int
		draws    []int
		want     string
	}{
		{"fewer in flight wins", []int64{5, 1, 0}, nil, []int{0, 1}, "c"}, // draws a, then c (1 shifted past a)
		{"second draw shifts past the first", []int64{3, 3, 1}, nil, []int{1, 1}, "c"},
		{"tie keeps the first draw", []int64{2, 2, 2}, nil, []int{2, 0}, "c"},
		{"busier second loses", []int64{0, 9}, nil, []int{0, 0}, "a"},
		{"single Endpoint needs no draw", []int64{7}, nil, nil, "a"},
		{"skip leaves one", []int64{0, 4}, []int{0}, nil, "b"},
		{"skip among three", []int64{0, 4, 2}, []int{0}, []int{0, 0}, "c"},
		{"all skipped", []int64{0}, []int{0}, nil, "-"},
		{"no endpoints", nil, nil, nil, "-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := eps(tc.inflight...)
			skip := map[*Endpoint]bool{}
			for _, i := range tc.skip {
				skip[es[i]] = true
			}
			b := New(meshapi.LB_LB_LEAST_REQUEST, es, script(t, tc.draws...))
			if got := ids([]*Endpoint{b.Pick(skip)}); got != tc.want {
				t.Errorf("picked %s, want %s", got, tc.want)
			}
		})
	}
}

func TestEndpointAcquireRelease(t *testing.T) {
	e := &Endpoint{}
	r1 := e.Acquire()
	r2 := e.Acquire()
	r1()
	r1() // releasing twice counts once
	if n := e.inflight.Load(); n != 1 {
		t.Fatalf("in flight %d, want 1", n)
	}
	r2()
	if n := e.inflight.Load(); n != 0 {
		t.Fatalf("in flight %d, want 0", n)
	}
}

func TestBuildEndpointsKeepsCounts(t *testing.T) {
	prev := Build([]*meshapi.Endpoint{
		{InstanceId: "a", Address: "127.0.0.1", Port: 1},
		{InstanceId: "b", Address: "127.0.0.1", Port: 2},
	}, nil)
	prev[0].inflight.Store(4)
	next := Build([]*meshapi.Endpoint{
		{InstanceId: "c", Address: "127.0.0.1", Port: 3},
		{InstanceId: "a", Address: "127.0.0.1", Port: 1},
		{InstanceId: "b2", Address: "127.0.0.1", Port: 2}, // same address, new instance
	}, prev)
	if next[1] != prev[0] || next[1].inflight.Load() != 4 {
		t.Error("the unchanged Endpoint lost its in-flight count")
	}
	if next[2] == prev[1] {
		t.Error("an Endpoint with a new instance ID reused the old one")
	}
	if next[0].Addr != "127.0.0.1:3" {
		t.Errorf("address %q, want 127.0.0.1:3", next[0].Addr)
	}
}
