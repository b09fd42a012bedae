package policyhcl

import (
	"fmt"
	"strings"

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
//
// The service's jwt block and rate_limit blocks apply at the gateway, to
// its clients outside the mesh (checkGatewayRateLimits,
// checkGatewayTokens): a token is checked before routing, and a limit is
// per client address, per end user or for all.
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
		if ok {
			diags = append(diags, checkGatewayRateLimits(g, self)...)
		}
		for _, l := range g.Listeners {
			if ok && self.JWT != nil && (l.Protocol == policy.GatewayTCP || l.Protocol == policy.GatewayTLS) {
				diags = append(diags, errorAt(l.ProtocolRange, "Token check on a connection listener",
					fmt.Sprintf("Gateway %q requires end-user tokens (service %q has a jwt block at %s), but listener %q speaks %q: it carries connections, not requests, so no token can be checked and the requirement would not hold. "+
						"Use protocol = \"https\" or \"http\", or serve this listener from another gateway whose service has no jwt block.",
						g.Name, g.Service, at(self.JWT.DeclRange), l.Name, l.Protocol)))
			}
			for _, r := range l.Routes {
				diags = append(diags, r.check(g, l, self, declared, names)...)
			}
		}
	}
	return diags
}

// checkGatewayRateLimits reports the rate limits of a gateway's service
// that a gateway cannot enforce: its clients are outside the mesh, so no
// limit is per caller or for some callers, and it takes no share of a
// global budget. The others apply at the gateway, per client address
// (per_source_ip), per end user (per_jwt_subject) or for every request.
func checkGatewayRateLimits(g *gateway, self *service) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, rl := range self.RateLimits {
		switch {
		case rl.PerCaller || len(rl.Callers) > 0:
			rng := rl.DeclRange
			if len(rl.Callers) > 0 {
				rng = rl.CallersRange
			}
			diags = append(diags, errorAt(rng, "Rate limit per caller on a gateway",
				fmt.Sprintf("Service %q runs gateway %q, whose clients are outside the mesh and have no service name: rate limit %q cannot be per caller or for some callers. Use per_source_ip = true (a bucket per client address) or per_jwt_subject (a bucket per end user).",
					self.Name, g.Name, rl.Name)))
		case rl.Global:
			diags = append(diags, errorAt(rl.ScopeRange, "Global rate limit on a gateway",
				fmt.Sprintf("Service %q runs gateway %q, which enforces its rate limits on each instance and takes no share of a global budget. Remove scope = \"global\" from rate limit %q, and divide the rate by the number of gateway instances.",
					self.Name, g.Name, rl.Name)))
		}
	}
	return diags
}

// checkGatewayTokens reports a permission that wants an end-user token of
// a request from a gateway, when the gateway removes that token before it
// calls the destination: the gateway's service requires a provider that
// does not forward its token (forward_token) and reads it where the
// permission's provider does. Permissions are checked by the destination's
// sidecar, which would then answer 401 to every request.
func checkGatewayTokens(gateways []*gateway, declared map[string]*service, intentions []*intention, providers map[string]*jwtProvider) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, g := range gateways {
		self, ok := declared[g.Service]
		if !ok || self.JWT == nil {
			continue
		}
		for _, in := range intentions {
			if in.SourceService != g.Service || in.SourceNamespace != "" && in.SourceNamespace != self.Namespace {
				continue
			}
			for _, perm := range in.Permissions {
				if perm.JWT == nil {
					continue
				}
				want, ok := providers[perm.JWT.Provider]
				if !ok {
					continue // checkPermissionJWT reports it
				}
				for _, n := range self.JWT.Providers {
					q, ok := providers[n]
					if !ok || q.ForwardToken || !sameTokenPlace(q.JWTProvider, want.JWTProvider) {
						continue
					}
					diags = append(diags, errorAt(perm.JWT.DeclRange, "Token removed by the gateway",
						fmt.Sprintf("This permission wants a token of %q on requests from gateway %q, and %s's sidecar checks it there. But the gateway checks tokens of %q first (service %q's jwt block) and removes them before it calls %s, since %q does not set forward_token. "+
							"Set forward_token = true in jwt_provider %q (at %s), or remove the jwt block from this permission.",
							want.Name, g.Name, in.Destination, q.Name, g.Service, in.Destination, q.Name, q.Name, at(q.DeclRange))))
					break
				}
			}
		}
	}
	return diags
}

// sameTokenPlace reports whether a and b read a token from the same
// header, query parameter or cookie.
func sameTokenPlace(a, b policy.JWTProvider) bool {
	return a.Header != "" && strings.EqualFold(a.Header, b.Header) ||
		a.Query != "" && a.Query == b.Query ||
		a.Cookie != "" && a.Cookie == b.Cookie
}

func (g *gateway) toPolicy() policy.Gateway {
	pg := policy.Gateway{Name: g.Name, Service: g.Service}
	for _, l := range g.Listeners {
		pg.Listeners = append(pg.Listeners, l.toPolicy())
	}
	return pg
}
