package policyhcl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// gatewayRoute is a decoded route block of a gateway listener: the hosts
// it takes (the Host header, or for a tls listener the SNI), the service
// it sends to, and the blocks of a service's route (match, split, retry,
// timeouts, request_headers, response_headers, fault, mirror). Its match
// blocks choose the requests it takes; its other blocks, when it has any,
// replace the service's own routes for what it takes (without them the
// service's routes apply, as for any caller).
//
//	route "api" {
//	  hosts   = ["shop.example.com"]
//	  service = "api"
//	  match { path_prefix = "/api/" }
//	  split "v2" { weight = 10 }
//	  split "v1" { weight = 90 }
//	  retry { attempts = 3 }
//	}
type gatewayRoute struct {
	Name         string
	NameRange    hcl.Range
	Hosts        []string
	HostsRange   hcl.Range
	Service      string
	ServiceRange hcl.Range
	Route        *route // its match and L7 blocks

	DeclRange hcl.Range
}

var gatewayRouteAttrs = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "hosts"}, {Name: "service", Required: true}},
}

// maxHosts bounds a route's hosts list.
const maxHosts = 64

func decodeGatewayRouteBlock(block *hcl.Block) (*gatewayRoute, hcl.Diagnostics) {
	r := &gatewayRoute{Name: block.Labels[0], NameRange: block.LabelRanges[0], DeclRange: block.DefRange}
	r.Route = &route{Name: r.Name, NameRange: r.NameRange, DeclRange: r.DeclRange}
	var diags hcl.Diagnostics
	if !model.ValidName(r.Name) {
		diags = append(diags, errorAt(r.NameRange, "Invalid route name",
			fmt.Sprintf("The route name %q is not a DNS label. Use lower-case letters, digits and dashes, such as \"shop\".", r.Name)))
	}
	content, rest, d := block.Body.PartialContent(gatewayRouteAttrs)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["service"]; ok {
		s, _, d := decodeString(attr)
		diags = append(diags, d...)
		r.Service, r.ServiceRange = s, attr.Expr.Range()
	}
	if attr, ok := content.Attributes["hosts"]; ok {
		r.HostsRange = attr.Expr.Range()
		hosts, d := decodeStringList(attr)
		diags = append(diags, d...)
		if len(hosts) > maxHosts {
			diags = append(diags, errorAt(r.HostsRange, "Too many hosts",
				fmt.Sprintf("Route %q names %d hosts; at most %d. Use a wildcard such as \"*.example.com\", or split the route.", r.Name, len(hosts), maxHosts)))
		}
		for _, h := range hosts {
			if why := checkHostName(h); why != "" {
				diags = append(diags, errorAt(r.HostsRange, "Invalid host", fmt.Sprintf("The host %q of route %q %s", h, r.Name, why)))
			}
			r.Hosts = append(r.Hosts, h) // kept when invalid: no policy comes of it, and the route is no catch-all
		}
	}
	diags = append(diags, r.Route.decodeBody(rest)...)
	return r, diags
}

// checkHostName says what is wrong with a host name a route or an sni
// list names ("" when nothing): lower-case DNS names, with at most a "*."
// in front.
func checkHostName(h string) string {
	name := strings.TrimPrefix(h, "*.")
	switch {
	case h == "":
		return "is empty. Name a host such as \"shop.example.com\", or leave the list out to take any host."
	case len(h) > 253:
		return "is longer than 253 characters, the longest DNS name."
	case h != strings.ToLower(h):
		return "has upper-case letters. Host names compare without case: write it in lower case."
	case strings.Contains(name, "*"):
		return "has a \"*\" other than a leading \"*.\". A wildcard stands for one label at the front, such as \"*.example.com\"."
	}
	for _, label := range strings.Split(name, ".") {
		if !model.ValidName(label) {
			return fmt.Sprintf("has the label %q, which is not a DNS label (letters, digits and dashes, at most 63).", label)
		}
	}
	return ""
}

// hasL7 reports whether the route has blocks beyond hosts, service and
// match: its own L7 settings.
func (r *gatewayRoute) hasL7() bool {
	rt := r.Route
	return len(rt.Matches) > 0 || len(rt.Splits) > 0 || rt.Retry != nil || rt.Timeouts != nil || rt.ReqHdrs != nil ||
		rt.RespHdrs != nil || rt.Fault != nil || rt.Mirror != nil
}

// ownSettings reports whether the route sets more than its matches.
func (r *gatewayRoute) ownSettings() bool {
	rt := r.Route
	return len(rt.Splits) > 0 || rt.Retry != nil || rt.Timeouts != nil || rt.ReqHdrs != nil ||
		rt.RespHdrs != nil || rt.Fault != nil || rt.Mirror != nil
}

// check checks a route against the services: its service is declared,
// is not the gateway itself, and speaks what the listener carries; its
// own L7 settings hold for that service as a service's route would.
func (r *gatewayRoute) check(g *gateway, l *gatewayListener, self *service, declared map[string]*service, names []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	dst, ok := declared[r.Service]
	switch {
	case r.Service == "":
		return nil // reported by decode
	case !ok:
		return append(diags, errorAt(r.ServiceRange, "Unknown service",
			fmt.Sprintf("Route %q of gateway %q sends to %q, but no service %q is declared. ", r.Name, g.Name, r.Service, r.Service)+declaredHint(r.Service, names)))
	case r.Service == g.Service:
		return append(diags, errorAt(r.ServiceRange, "Route to the gateway itself",
			fmt.Sprintf("Route %q of gateway %q sends to the gateway's own service %q, which would loop. Send it to the service behind the gateway.", r.Name, g.Name, r.Service)))
	}
	connRoute := l.Protocol == policy.GatewayTCP || l.Protocol == policy.GatewayTLS
	if connRoute && dst.Protocol != policy.TCP {
		diags = append(diags, errorAt(r.ServiceRange, "Connection route to an HTTP service",
			fmt.Sprintf("Listener %q speaks %q and carries connections, but service %q speaks %q, whose sidecars expect requests. Route it from an \"http\" or \"https\" listener, or set the service's protocol to \"tcp\".", l.Name, l.Protocol, r.Service, dst.Protocol)))
	}
	if !connRoute && dst.Protocol == policy.TCP {
		diags = append(diags, errorAt(r.ServiceRange, "Request route to a TCP service",
			fmt.Sprintf("Listener %q speaks %q and routes requests, but service %q speaks \"tcp\". Set the service's protocol to \"http\", \"http2\" or \"grpc\", or route it from a \"tcp\" or \"tls\" listener.", l.Name, l.Protocol, r.Service)))
	}
	if connRoute || dst.Protocol == policy.TCP {
		return diags
	}
	// Its own settings hold for the destination as a route of it would.
	fake := &service{Name: dst.Name, Protocol: dst.Protocol, Subsets: dst.Subsets, Timeouts: dst.Timeouts, Routes: []*route{r.Route}}
	diags = append(diags, checkRoutes(fake)...)
	if m := r.Route.Mirror; m != nil {
		ms, ok := declared[m.Service]
		switch {
		case !ok:
			diags = append(diags, errorAt(m.ServiceRange, "Unknown mirror service",
				fmt.Sprintf("Route %q of gateway %q mirrors to %q, but no service %q is declared. ", r.Name, g.Name, m.Service, m.Service)+declaredHint(m.Service, names)))
		case ms.Protocol == policy.TCP:
			diags = append(diags, errorAt(m.ServiceRange, "Mirror to a TCP service",
				fmt.Sprintf("Service %q speaks \"tcp\" and cannot take copies of HTTP requests.", m.Service)))
		}
	}
	if f := r.Route.Fault; f != nil && len(f.Callers) > 0 {
		diags = append(diags, errorAt(f.DeclRange, "Fault callers on a gateway route",
			fmt.Sprintf("Route %q of gateway %q is only ever taken by the gateway itself: a fault there applies to every request it takes. Remove callers.", r.Name, g.Name)))
	}
	return diags
}

func (r *gatewayRoute) toPolicy() policy.GatewayRoute {
	pr := policy.GatewayRoute{Name: r.Name, Hosts: r.Hosts, Service: r.Service}
	for _, m := range r.Route.Matches {
		pr.Matches = append(pr.Matches, m.Match)
	}
	if r.ownSettings() {
		rt := r.Route.toPolicy()
		pr.Route = &rt
	}
	return pr
}
