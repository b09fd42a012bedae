package compile

import (
	"testing"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/registry"
)

// TestBindAddresses holds the rule that an instance's app and outbound
// listeners are never on a routable address, and that the inbound binds
// MeshListen when the adapter set one.
func TestBindAddresses(t *testing.T) {
	for _, tc := range []struct {
		name, address, meshListen string
		wantLocal                 string // app address and every upstream bind
		wantInBind                string
		wantInPort                uint32
	}{
		{name: "local adapter loopback kept", address: "127.0.0.7", wantLocal: "127.0.0.7", wantInBind: "127.0.0.7", wantInPort: 15001},
		{name: "ipv6 loopback kept", address: "::1", wantLocal: "::1", wantInBind: "::1", wantInPort: 15001},
		{name: "node IP (nomad host mode)", address: "10.1.2.3", wantLocal: "127.0.0.1", wantInBind: "10.1.2.3", wantInPort: 15001},
		{name: "pod IP", address: "10.244.0.17", wantLocal: "127.0.0.1", wantInBind: "10.244.0.17", wantInPort: 15001},
		{name: "public ipv6", address: "2001:db8::5", wantLocal: "127.0.0.1", wantInBind: "2001:db8::5", wantInPort: 15001},
		{name: "unspecified v4 is not loopback", address: "0.0.0.0", wantLocal: "127.0.0.1", wantInBind: "0.0.0.0", wantInPort: 15001},
		{name: "unspecified v6 is not loopback", address: "::", wantLocal: "127.0.0.1", wantInBind: "::", wantInPort: 15001},
		{name: "link-local with zone", address: "fe80::1%eth0", wantLocal: "127.0.0.1", wantInBind: "fe80::1%eth0", wantInPort: 15001},
		{name: "hostname is not an IP", address: "localhost", wantLocal: "127.0.0.1", wantInBind: "localhost", wantInPort: 15001},
		{name: "loopback-looking hostname", address: "127.0.0.1.attacker.example", wantLocal: "127.0.0.1", wantInBind: "127.0.0.1.attacker.example", wantInPort: 15001},
		{name: "short form is not parsed as loopback", address: "127.1", wantLocal: "127.0.0.1", wantInBind: "127.1", wantInPort: 15001},
		{name: "empty address", address: "", wantLocal: "127.0.0.1", wantInBind: "", wantInPort: 15001},
		{name: "mesh listen inside a netns", address: "10.1.2.3", meshListen: "0.0.0.0:15001", wantLocal: "127.0.0.1", wantInBind: "0.0.0.0", wantInPort: 15001},
		{name: "mesh listen with another port", address: "10.1.2.3", meshListen: "172.26.64.5:24000", wantLocal: "127.0.0.1", wantInBind: "172.26.64.5", wantInPort: 24000},
		{name: "mesh listen ipv6", address: "2001:db8::5", meshListen: "[::]:15001", wantLocal: "127.0.0.1", wantInBind: "::", wantInPort: 15001},
		{name: "mesh listen port 0 ignored", address: "10.1.2.3", meshListen: "0.0.0.0:0", wantLocal: "127.0.0.1", wantInBind: "10.1.2.3", wantInPort: 15001},
		{name: "mesh listen garbage ignored", address: "10.1.2.3", meshListen: "not-an-addr", wantLocal: "127.0.0.1", wantInBind: "10.1.2.3", wantInPort: 15001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := entry("frontend-0", "frontend", tc.address, model.HealthPassing)
			e.Instance.MeshListen = tc.meshListen
			e.Instance.Ports["upstream:api"] = 21000
			cfg := Compile(demoPolicy(), []registry.Entry{e})["frontend-0"]
			if cfg == nil {
				t.Fatal("no config compiled")
			}
			if got := cfg.Inbound.AppAddress; got != tc.wantLocal {
				t.Errorf("app address = %q, want %q", got, tc.wantLocal)
			}
			if len(cfg.Upstreams) != 1 {
				t.Fatalf("upstreams = %v, want 1", cfg.Upstreams)
			}
			if got := cfg.Upstreams[0].BindAddress; got != tc.wantLocal {
				t.Errorf("upstream bind = %q, want %q", got, tc.wantLocal)
			}
			if cfg.Upstreams[0].LocalPort != 21000 {
				t.Errorf("upstream port = %d, want 21000", cfg.Upstreams[0].LocalPort)
			}
			if got := cfg.Inbound.BindAddress; got != tc.wantInBind {
				t.Errorf("inbound bind = %q, want %q", got, tc.wantInBind)
			}
			if got := cfg.Inbound.Port; got != tc.wantInPort {
				t.Errorf("inbound port = %d, want %d", got, tc.wantInPort)
			}
		})
	}
}

// TestBindAddressesEndpointsUnchanged: callers still dial the instance's
// Address:Ports[mesh], whatever the instance's own inbound binds.
func TestBindAddressesEndpointsUnchanged(t *testing.T) {
	api := entry("api-0", "api", "10.1.2.3", model.HealthPassing)
	api.Instance.Ports[model.PortMesh] = 31234
	api.Instance.MeshListen = "0.0.0.0:15001"
	fe := entry("frontend-0", "frontend", "10.1.2.4", model.HealthPassing)
	got := Compile(demoPolicy(), []registry.Entry{api, fe})
	eps := got["frontend-0"].Upstreams[0].Endpoints
	if len(eps) != 1 || eps[0].Address != "10.1.2.3" || eps[0].Port != 31234 {
		t.Errorf("endpoints = %v, want 10.1.2.3:31234", eps)
	}
	if in := got["api-0"].Inbound; in.BindAddress != "0.0.0.0" || in.Port != 15001 {
		t.Errorf("api inbound = %s:%d, want 0.0.0.0:15001", in.BindAddress, in.Port)
	}
}
