package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// gatewayListener is a decoded listener block of a gateway: a port open to
// clients outside the mesh, what it speaks, its TLS and its routes, tried
// in order.
type gatewayListener struct {
	Name          string
	NameRange     hcl.Range
	Port          int
	PortRange     hcl.Range
	Protocol      policy.GatewayProtocol
	ProtocolRange hcl.Range
	TLS           *gatewayTLS
	Routes        []*gatewayRoute

	DeclRange hcl.Range
}

var gatewayListenerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "port", Required: true}, {Name: "protocol", Required: true}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "tls"},
		{Type: "route", LabelNames: []string{"name"}},
	},
}

var gatewayProtocols = []policy.GatewayProtocol{policy.GatewayHTTP, policy.GatewayHTTPS, policy.GatewayTCP, policy.GatewayTLS}

func decodeGatewayListenerBlock(block *hcl.Block) (*gatewayListener, hcl.Diagnostics) {
	l := &gatewayListener{Name: block.Labels[0], NameRange: block.LabelRanges[0], DeclRange: block.DefRange}
	var diags hcl.Diagnostics
	if !model.ValidName(l.Name) {
		diags = append(diags, errorAt(l.NameRange, "Invalid listener name",
			fmt.Sprintf("The listener name %q is not a DNS label. Use lower-case letters, digits and dashes, such as \"web\".", l.Name)))
	}
	content, d := block.Body.Content(gatewayListenerSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["port"]; ok {
		n, _, d := decodeInt(attr, 1, 65535, "port")
		diags = append(diags, d...)
		l.Port, l.PortRange = n, attr.Expr.Range()
	}
	if attr, ok := content.Attributes["protocol"]; ok {
		p, _, d := decodeEnum(attr, gatewayProtocols, "Invalid listener protocol", "protocol")
		diags = append(diags, d...)
		l.Protocol, l.ProtocolRange = p, attr.Expr.Range()
	}
	seen := map[string]*gatewayRoute{}
	var catchAll *gatewayRoute
	for _, b := range content.Blocks {
		switch b.Type {
		case "tls":
			t, d := decodeGatewayTLSBlock(b)
			diags = append(diags, d...)
			if l.TLS != nil {
				diags = append(diags, duplicateBlock("tls", fmt.Sprintf("Listener %q", l.Name), l.TLS.DeclRange, b.DefRange))
				continue
			}
			l.TLS = t
		case "route":
			r, d := decodeGatewayRouteBlock(b)
			diags = append(diags, d...)
			if prev, dup := seen[r.Name]; dup {
				diags = append(diags, errorAt(r.NameRange, "Duplicate route",
					fmt.Sprintf("Listener %q already has a route %q at %s. Rename one of them.", l.Name, r.Name, at(prev.DeclRange))))
				continue
			}
			seen[r.Name] = r
			if catchAll != nil && l.Protocol != policy.GatewayTCP { // tcp: checkShape says more
				diags = append(diags, errorAt(r.DeclRange, "Unreachable route",
					fmt.Sprintf("Route %q comes after route %q (at %s), which takes every request of any host, so it never applies. Move it before %q, or give %q hosts or a match block.",
						r.Name, catchAll.Name, at(catchAll.DeclRange), catchAll.Name, catchAll.Name)))
			} else if len(r.Hosts) == 0 && len(r.Route.Matches) == 0 {
				catchAll = r
			}
			l.Routes = append(l.Routes, r)
		}
	}
	diags = append(diags, l.checkShape()...)
	return l, diags
}

// checkShape checks what the protocol asks of the rest of the listener.
func (l *gatewayListener) checkShape() hcl.Diagnostics {
	var diags hcl.Diagnostics
	switch l.Protocol {
	case policy.GatewayHTTPS:
		if l.TLS == nil {
			diags = append(diags, errorAt(l.DeclRange, "HTTPS listener without tls",
				fmt.Sprintf("Listener %q speaks \"https\" but has no tls block, so it has no certificate. Add tls { cert_file = \"...\"  key_file = \"...\" } or tls { mesh_certificate = true }.", l.Name)))
		}
	case policy.GatewayHTTP, policy.GatewayTCP, policy.GatewayTLS:
		if l.TLS != nil {
			diags = append(diags, errorAt(l.TLS.DeclRange, "tls block on a listener that does not end TLS",
				fmt.Sprintf("Listener %q speaks %q: it does not end TLS, so a certificate means nothing. Set protocol = \"https\" to end TLS here, or remove the tls block.", l.Name, l.Protocol)))
		}
	}
	if len(l.Routes) == 0 {
		diags = append(diags, errorAt(l.DeclRange, "Listener without routes",
			fmt.Sprintf("Listener %q has no route, so it would refuse everything. Add one: route \"web\" { service = \"frontend\" }.", l.Name)))
	}
	for i, r := range l.Routes {
		switch l.Protocol {
		case policy.GatewayTCP:
			if i == 1 {
				diags = append(diags, errorAt(r.DeclRange, "Second route on a TCP listener",
					fmt.Sprintf("Listener %q speaks \"tcp\": a connection carries no host to route by, so its first route takes every connection and route %q never applies. Give it a listener of its own.", l.Name, r.Name)))
			}
			if len(r.Hosts) > 0 {
				diags = append(diags, errorAt(r.HostsRange, "Hosts on a TCP listener",
					fmt.Sprintf("Listener %q speaks \"tcp\", which carries no host name. Remove hosts, or use protocol = \"tls\" to route TLS by its SNI.", l.Name)))
			}
			fallthrough
		case policy.GatewayTLS:
			if r.hasL7() {
				diags = append(diags, errorAt(r.DeclRange, "HTTP settings on a connection route",
					fmt.Sprintf("Listener %q speaks %q: it carries connections, not requests, so route %q cannot match, split, retry or change headers. Keep only hosts and service, or use protocol = \"https\".", l.Name, l.Protocol, r.Name)))
			}
		}
	}
	return diags
}

func (l *gatewayListener) toPolicy() policy.GatewayListener {
	pl := policy.GatewayListener{Name: l.Name, Port: l.Port, Protocol: l.Protocol}
	if l.TLS != nil {
		t := l.TLS.GatewayListenerTLS
		pl.TLS = &t
	}
	for _, r := range l.Routes {
		pl.Routes = append(pl.Routes, r.toPolicy())
	}
	return pl
}
