package policy

import (
	"strings"
	"testing"
)

// A plan names gateways added, removed and changed, with their listeners.
func TestGatewayPlan(t *testing.T) {
	gw := func(port int) map[string]Gateway {
		return map[string]Gateway{"public": {Name: "public", Service: "edge", Listeners: []GatewayListener{{Name: "web", Port: port, Protocol: GatewayHTTPS}}}}
	}
	old, next := &Policy{Gateways: gw(8443)}, &Policy{Gateways: gw(9443)}
	var b strings.Builder
	if err := Diff(old, next).Write(&b); err != nil {
		t.Fatal(err)
	}
	if want := "~ gateway \"public\"\n  ~ listener \"web\" (port)\n"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("plan:\n%s\nwant it to begin with:\n%s", b.String(), want)
	}
	if p := Diff(old, &Policy{}); len(p.Gateways) != 1 || p.Gateways[0].Kind != Removed {
		t.Errorf("a removed gateway: %+v", p.Gateways)
	}
	if p := Diff(old, old); !p.Empty() {
		t.Errorf("no change: %+v", p)
	}
	if g, ok := next.GatewayOf("edge"); !ok || g.Name != "public" {
		t.Errorf("GatewayOf(edge) = %v, %v", g, ok)
	}
}
