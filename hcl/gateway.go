package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// gateway is a decoded gateway block: an ingress gateway, the way into the
// mesh from outside. Its instances are instances of service (by default
// the block's label), which a service block declares with its bindings
// like any service; they run weft-proxy, which the configuration puts in
// gateway mode. The gateway calls mesh services over mTLS with that
// service's identity, so intentions name it as a source:
//
//	service "public" { binding "local" { name = "public" } }
//
//	gateway "public" {
//	  listener "web" {
//	    port     = 8443
//	    protocol = "https"             # http, https, tcp or tls (passthrough by SNI)
//	    tls {
//	      cert_file   = "/etc/weft/public.crt"  # or mesh_certificate = true
//	      key_file    = "/etc/weft/public.key"
//	      sni         = ["shop.example.com"]
//	      min_version = "1.2"
//	    }
//	    route "shop" {
//	      hosts   = ["shop.example.com"]
//	      service = "frontend"
//	      match { path_prefix = "/" }  # and every block of a service's route
//	    }
//	  }
//	}
//
//	intention "public" "frontend" { action = "allow" }
type gateway struct {
	Name         string
	NameRange    hcl.Range
	Service      string
	ServiceRange hcl.Range // the label's when defaulted
	Listeners    []*gatewayListener

	DeclRange hcl.Range
}

var gatewaySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "service"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "listener", LabelNames: []string{"name"}}},
}

func decodeGatewayBlock(block *hcl.Block) (*gateway, hcl.Diagnostics) {
	g := &gateway{Name: block.Labels[0], NameRange: block.LabelRanges[0], DeclRange: block.DefRange}
	g.Service, g.ServiceRange = g.Name, g.NameRange
	var diags hcl.Diagnostics
	if !model.ValidName(g.Name) {
		diags = append(diags, errorAt(g.NameRange, "Invalid gateway name",
			fmt.Sprintf("The gateway name %q is not a DNS label. Use lower-case letters, digits and dashes, such as \"public\".", g.Name)))
	}
	content, d := block.Body.Content(gatewaySchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["service"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			g.Service, g.ServiceRange = s, attr.Expr.Range()
			if !model.ValidName(s) {
				diags = append(diags, errorAt(g.ServiceRange, "Invalid service name",
					fmt.Sprintf("The gateway's service %q is not a DNS label. Name the service its instances serve, such as \"public-gateway\".", s)))
			}
		}
	}
	ports := map[int]*gatewayListener{}
	names := map[string]*gatewayListener{}
	for _, b := range content.Blocks {
		l, d := decodeGatewayListenerBlock(b)
		diags = append(diags, d...)
		if prev, dup := names[l.Name]; dup {
			diags = append(diags, errorAt(l.NameRange, "Duplicate listener",
				fmt.Sprintf("Gateway %q already has a listener %q at %s. Rename one of them.", g.Name, l.Name, at(prev.DeclRange))))
			continue
		}
		names[l.Name] = l
		if prev, dup := ports[l.Port]; dup && l.Port != 0 {
			diags = append(diags, errorAt(l.PortRange, "Port used twice",
				fmt.Sprintf("Listener %q of gateway %q already listens on port %d (at %s). Give each listener its own port.", prev.Name, g.Name, l.Port, at(prev.PortRange))))
			continue
		}
		ports[l.Port] = l
		g.Listeners = append(g.Listeners, l)
	}
	if len(content.Blocks) == 0 {
		diags = append(diags, errorAt(g.DeclRange, "Gateway without listeners",
			fmt.Sprintf("Gateway %q has no listener, so it would take no traffic. Add one: listener \"web\" { port = 8443  protocol = \"https\" ... }.", g.Name)))
	}
	return g, diags
}

// checkGateways checks the gateways against the services: unique names
// and services, a service block for each gateway's service (its
// bindings and namespace), routes to declared services that speak what
// the listener carries.
func checkGateways(gateways []*gateway, declared map[string]*service, names []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]*gateway{}
	bySvc := map[string]*gateway{}
	for _, g := range gateways {
		if prev, dup := seen[g.Name]; dup {
			diags = append(diags, errorAt(g.NameRange, "Duplicate gateway",
				fmt.Sprintf("A gateway %q is already declared at %s. Merge the two blocks or rename one of them.", g.Name, at(prev.DeclRange))))
			continue
		}
		seen[g.Name] = g
		if prev, dup := bySvc[g.Service]; dup {
			diags = append(diags, errorAt(g.ServiceRange, "Two gateways for one service",
				fmt.Sprintf("Gateway %q (at %s) already runs as service %q. An instance serves one gateway: give this one a service of its own.", prev.Name, at(prev.DeclRange), g.Service)))
			continue
		}
		bySvc[g.Service] = g
		self, ok := declared[g.Service]
		if !ok {
			diags = append(diags, errorAt(g.ServiceRange, "Gateway service not declared",
				fmt.Sprintf("Gateway %q runs as service %q, but no service %q is declared. The gateway's instances need a service block with the bindings that let them have its identity, such as: service %q { binding \"local\" { name = %q } }.",
					g.Name, g.Service, g.Service, g.Service, g.Service)))
		}
		for _, l := range g.Listeners {
			for _, r := range l.Routes {
				diags = append(diags, r.check(g, l, self, declared, names)...)
			}
		}
	}
	return diags
}

func (g *gateway) toPolicy() policy.Gateway {
	pg := policy.Gateway{Name: g.Name, Service: g.Service}
	for _, l := range g.Listeners {
		pg.Listeners = append(pg.Listeners, l.toPolicy())
	}
	return pg
}
