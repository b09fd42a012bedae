package nomad

import (
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// bridged turns web0's group network into a bridge network, the way Nomad
// 1.6.1 reports one: Mode "bridge", the mesh port mapped to 15001 inside,
// no upstream port blocks (their ports travel in the service's tags).
func bridged(st *State, tags ...string) {
	a := allocOf(*st, web0)
	a.AllocatedResources.Shared.Networks[0].Mode = "bridge"
	var ports = a.AllocatedResources.Shared.Ports[:0]
	for _, p := range a.AllocatedResources.Shared.Ports {
		switch p.Label {
		case "mesh":
			p.To = 15001
		case "upstream_db":
			continue
		}
		ports = append(ports, p)
	}
	a.AllocatedResources.Shared.Ports = ports
	for _, r := range st.Services {
		if r.AllocID == web0 {
			r.Tags = append(r.Tags, tags...)
		}
	}
}

func TestTranslateIsolation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mutate     func(st *State)
		want       model.Isolation
		meshListen string
		ports      map[string]int
		skipped    string // a diagnostic summary naming web0's web, when it is skipped
		addr       string // default 127.0.0.1, the mesh port's host IP
	}{
		{name: "host networking (recorded)", mutate: func(*State) {}, want: model.IsolationNone,
			ports: map[string]int{"app": 28090, "mesh": 26548, "upstream:db": 26650}},
		{name: "explicit host mode", mutate: func(st *State) {
			allocOf(*st, web0).AllocatedResources.Shared.Networks[0].Mode = "host"
		}, want: model.IsolationNone, ports: map[string]int{"app": 28090, "mesh": 26548, "upstream:db": 26650}},
		{name: "bridge", mutate: func(st *State) { bridged(st, "weft_upstream_db=9002", "weft_upstream_user_db=9003") },
			want: model.IsolationNetNS, meshListen: "0.0.0.0:15001",
			ports: map[string]int{"app": 28090, "mesh": 26548, "upstream:db": 9002, "upstream:user-db": 9003}},
		{name: "bridge, mesh port without to", mutate: func(st *State) {
			bridged(st)
			for i, p := range allocOf(*st, web0).AllocatedResources.Shared.Ports {
				if p.Label == "mesh" {
					allocOf(*st, web0).AllocatedResources.Shared.Ports[i].To = 0
				}
			}
		}, want: model.IsolationNetNS, meshListen: "0.0.0.0:26548", ports: map[string]int{"app": 28090, "mesh": 26548}},
		{name: "bridge, advertise alloc", mutate: func(st *State) {
			bridged(st)
			st.AllocAddresses = map[string]string{web0: "172.26.64.9", web1: "not-an-ip"}
		}, want: model.IsolationNetNS, addr: "172.26.64.9", ports: map[string]int{"app": 28090, "mesh": 15001}},
		{name: "bridge, advertise alloc without an address", mutate: func(st *State) {
			bridged(st)
			st.AllocAddresses = map[string]string{web0: "bogus"}
		}, want: model.IsolationNetNS, meshListen: "0.0.0.0:15001", ports: map[string]int{"app": 28090, "mesh": 26548}},
		{name: "host mode ignores an alloc address", mutate: func(st *State) {
			st.AllocAddresses = map[string]string{web0: "172.26.64.9"}
		}, want: model.IsolationNone, ports: map[string]int{"app": 28090, "mesh": 26548, "upstream:db": 26650}},
		{name: "cni network", mutate: func(st *State) {
			bridged(st)
			allocOf(*st, web0).AllocatedResources.Shared.Networks[0].Mode = "cni/mynet"
		}, want: model.IsolationNetNS, meshListen: "0.0.0.0:15001", ports: map[string]int{"app": 28090, "mesh": 26548}},
		{name: "no networks reported", mutate: func(st *State) {
			allocOf(*st, web0).AllocatedResources.Shared.Networks = nil
		}, want: model.IsolationNone, ports: map[string]int{"app": 28090, "mesh": 26548, "upstream:db": 26650}},
		{name: "upstream tag port out of range", mutate: func(st *State) { bridged(st, "weft_upstream_db=70000") }, skipped: "skipping service web"},
		{name: "upstream tag port not a number", mutate: func(st *State) { bridged(st, "weft_upstream_db=9002x") }, skipped: "skipping service web"},
		{name: "upstream tag port zero", mutate: func(st *State) { bridged(st, "weft_upstream_db=0") }, skipped: "skipping service web"},
		{name: "upstream tag port negative", mutate: func(st *State) { bridged(st, "weft_upstream_db=-1") }, skipped: "skipping service web"},
		{name: "upstream tag name empty", mutate: func(st *State) { bridged(st, "weft_upstream_=9002") }, skipped: "skipping service web"},
		{name: "upstream tag name not a label", mutate: func(st *State) { bridged(st, "weft_upstream_DB/../x=9002") }, skipped: "skipping service web"},
		{name: "upstream tag name too long", mutate: func(st *State) { bridged(st, "weft_upstream_"+strings.Repeat("a", 64)+"=9002") }, skipped: "skipping service web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := loadState(t)
			tc.mutate(&st)
			ins, diags := instancesOf(Translate(st))
			var w *model.Instance
			for i := range ins {
				if ins[i].ID == web0+"/web" {
					w = &ins[i]
				}
			}
			if tc.skipped != "" {
				if w != nil {
					t.Fatalf("web0 translated despite a bad tag: %+v", *w)
				}
				for _, d := range diags {
					if strings.Contains(d.Summary, tc.skipped) && strings.Contains(d.Summary, web0) {
						return
					}
				}
				t.Fatalf("no diagnostic %q for web0: %v", tc.skipped, diags)
			}
			if w == nil {
				t.Fatalf("web0 not translated: %v", diags)
			}
			if w.Isolation != tc.want || w.MeshListen != tc.meshListen {
				t.Errorf("isolation %q, mesh_listen %q; want %q, %q", w.Isolation, w.MeshListen, tc.want, tc.meshListen)
			}
			if len(w.Ports) != len(tc.ports) {
				t.Errorf("ports %v, want %v", w.Ports, tc.ports)
			}
			for k, v := range tc.ports {
				if w.Ports[k] != v {
					t.Errorf("ports %v, want %v", w.Ports, tc.ports)
				}
			}
			for k := range w.Meta {
				if strings.HasPrefix(k, TagUpstreamPrefix) {
					t.Errorf("meta keeps the upstream tag %s: %v", k, w.Meta)
				}
			}
			if tc.addr == "" {
				tc.addr = "127.0.0.1"
			}
			if w.Address != tc.addr {
				t.Errorf("address %q, want %q", w.Address, tc.addr)
			}
			if err := w.Validate(); err != nil {
				t.Errorf("instance does not validate: %v", err)
			}
			// every other instance of the recorded state is host networking
			for _, in := range ins {
				if in.ID != w.ID && in.Isolation != model.IsolationNone {
					t.Errorf("%s: isolation %q, want none", in.ID, in.Isolation)
				}
			}
		})
	}
}

func TestAdvertiseOption(t *testing.T) {
	for _, tc := range []struct {
		value   string
		wantErr bool
	}{{"host", false}, {"alloc", false}, {"", true}, {"ALLOC", true}, {"node", true}} {
		t.Run(tc.value, func(t *testing.T) {
			cfg, diags := parseConfig(&sdk.ConfigureRequest{Source: "http://127.0.0.1:4646",
				Options: map[string]string{OptionAdvertise: tc.value}}, func(string) string { return "" })
			if sdk.HasErrors(diags) != tc.wantErr {
				t.Fatalf("advertise = %q: diagnostics %v, want error %v", tc.value, diags, tc.wantErr)
			}
			if !tc.wantErr && cfg.advertise != tc.value {
				t.Errorf("advertise = %q, want %q", cfg.advertise, tc.value)
			}
		})
	}
}

func TestWarnHostNetworking(t *testing.T) {
	var buf strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Warn})
	warned := map[string]bool{}
	host := model.Instance{ID: "a/web", Isolation: model.IsolationNone}
	bridge := model.Instance{ID: "b/web", Isolation: model.IsolationNetNS}
	warnHostNetworking(log, []model.Instance{host, bridge}, warned)
	warnHostNetworking(log, []model.Instance{host, bridge}, warned)
	if n := strings.Count(buf.String(), "ISOLATION OFF"); n != 1 || !strings.Contains(buf.String(), "a/web") || strings.Contains(buf.String(), "b/web") {
		t.Fatalf("log %q: want one warning, for a/web only", buf.String())
	}
	warnHostNetworking(log, []model.Instance{bridge}, warned) // a/web gone
	warnHostNetworking(log, []model.Instance{host}, warned)   // and back: warned again
	if n := strings.Count(buf.String(), "ISOLATION OFF"); n != 2 {
		t.Errorf("log %q: want a second warning when the instance comes back", buf.String())
	}
}

// With advertise = "alloc", a bridge allocation whose own address Nomad
// has not reported yet is left out until it has: advertised at the node's
// address for a moment, its sidecar would bind the wildcard address and
// could not move to the allocation's. Host-mode allocations and the
// default advertise = "host" are not held back.
func TestAdvertiseAllocWaitsForAddress(t *testing.T) {
	find := func(ins []model.Instance, id string) *model.Instance {
		for i := range ins {
			if ins[i].ID == id {
				return &ins[i]
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name    string
		addrs   map[string]string
		present bool
		addr    string
	}{
		{name: "advertise alloc, address not reported yet", addrs: map[string]string{}, present: false},
		{name: "advertise alloc, address reported", addrs: map[string]string{web0: "172.26.64.9"}, present: true, addr: "172.26.64.9"},
		{name: "advertise host", addrs: nil, present: true, addr: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := loadState(t)
			bridged(&st)
			st.AllocAddresses = tc.addrs
			ins, diags := instancesOf(Translate(st))
			w := find(ins, web0+"/web")
			if (w != nil) != tc.present {
				t.Fatalf("web0 translated: %v, want %v (diagnostics %v)", w != nil, tc.present, diags)
			}
			if w != nil && w.Address != tc.addr {
				t.Errorf("web0 at %q, want %q", w.Address, tc.addr)
			}
			// The host-mode instances of the recorded state are never held back.
			if find(ins, web1+"/web") == nil {
				t.Errorf("host-mode web1 left out: %v", diags)
			}
		})
	}
}
