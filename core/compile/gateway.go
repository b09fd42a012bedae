package compile

import (
	"sort"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/spiffe"
)

// gatewayConfig turns cfg, the configuration of an instance of a
// gateway's service, into a gateway's: no inbound (a gateway has no app
// and takes no mesh calls), and the gateway's listeners, each route with
// its service as an upstream compiled as for any caller (endpoints,
// routes, timeouts, circuit breaker, outlier detection). A route's own
// L7 settings come first among the upstream's routes, matching what the
// gateway route matches, so they win over the service's routes.
func gatewayConfig(p *policy.Policy, idx endpointSource, g policy.Gateway, in model.Instance, cfg *meshapi.ProxyConfig) {
	// The service's jwt block and rate limits apply at the gateway, to
	// the requests of clients outside the mesh (a gateway has no inbound).
	gw := &meshapi.Gateway{Name: g.Name, Jwt: cfg.GetInbound().GetJwt(), RateLimits: cfg.GetInbound().GetRateLimits()}
	cfg.Inbound = nil
	cfg.HealthCheck = nil
	cfg.Upstreams = nil
	for _, l := range g.Listeners {
		ml := &meshapi.GatewayListener{
			Name:        l.Name,
			BindAddress: in.Address,
			Port:        uint32(l.Port),
			Protocol:    gatewayProtocol(l.Protocol),
		}
		if t := l.TLS; t != nil {
			ml.Tls = &meshapi.GatewayTLS{
				CertFile: t.CertFile, KeyFile: t.KeyFile, MeshCertificate: t.MeshCertificate,
				Sni: append([]string(nil), t.SNI...), MinVersion: t.MinVersion,
			}
		}
		for _, r := range l.Routes {
			mr := &meshapi.GatewayRoute{Name: r.Name, Hosts: append([]string(nil), r.Hosts...)}
			for _, m := range r.Matches {
				mr.Matches = append(mr.Matches, routeMatch(m))
			}
			mr.Upstream = gatewayUpstream(p, idx, g, l, r)
			ml.Routes = append(ml.Routes, mr)
		}
		gw.Listeners = append(gw.Listeners, ml)
	}
	cfg.Gateway = gw
}

// gatewayUpstream is route r's service as an upstream of the gateway.
func gatewayUpstream(p *policy.Policy, idx endpointSource, g policy.Gateway, l policy.GatewayListener, r policy.GatewayRoute) *meshapi.Upstream {
	dst := serviceOf(p, r.Service)
	ns := nsOr(dst.Namespace)
	up := &meshapi.Upstream{
		Name:      "gateway/" + l.Name + "/" + r.Name,
		Service:   r.Service,
		SpiffeId:  spiffe.ID(p.Mesh.TrustDomain, ns, r.Service),
		Protocol:  protocol(dst.Protocol),
		Endpoints: idx.endpoints(dst, ns),
		Timeouts:  timeouts(dst.Timeouts),
	}
	if r.Route != nil {
		own := *r.Route
		own.Matches = r.Matches
		up.Routes = routes(p, idx, []policy.Route{own}, g.Service)
	} else {
		up.Routes = routes(p, idx, dst.Routes, g.Service)
	}
	upstreamProtection(up, dst) // compile.go
	return up
}

// gatewayCallers are the SPIFFE IDs of the mesh's gateways, sorted: the
// callers an inbound trusts with X-Forwarded-For and X-Forwarded-Proto
// (each gateway sets them from its client and drops what the client
// sent). Nil without gateways.
func gatewayCallers(p *policy.Policy) []string {
	if len(p.Gateways) == 0 {
		return nil
	}
	ids := make([]string, 0, len(p.Gateways))
	for _, g := range p.Gateways {
		ids = append(ids, spiffe.ID(p.Mesh.TrustDomain, nsOr(serviceOf(p, g.Service).Namespace), g.Service))
	}
	sort.Strings(ids)
	return ids
}

func gatewayProtocol(p policy.GatewayProtocol) meshapi.GatewayProtocol {
	switch p {
	case policy.GatewayHTTPS:
		return meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS
	case policy.GatewayTCP:
		return meshapi.GatewayProtocol_GATEWAY_PROTOCOL_TCP
	case policy.GatewayTLS:
		return meshapi.GatewayProtocol_GATEWAY_PROTOCOL_TLS_PASSTHROUGH
	}
	return meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTP
}

// gatewayReads calls read with every service group a gateway's
// configuration reads (its routes' services and their mirrors), for the
// Compiler to know which gateway instances a change of them touches.
func gatewayReads(p *policy.Policy, read func(group, caller string)) {
	for _, g := range p.Gateways {
		for _, l := range g.Listeners {
			for _, r := range l.Routes {
				dst := serviceOf(p, r.Service)
				read(groupKey(nsOr(dst.Namespace), r.Service), g.Service)
				rs := dst.Routes
				if r.Route != nil {
					rs = []policy.Route{*r.Route}
				}
				for _, rt := range rs {
					if rt.Mirror != nil {
						ms := serviceOf(p, rt.Mirror.Service)
						read(groupKey(nsOr(ms.Namespace), rt.Mirror.Service), g.Service)
					}
				}
			}
		}
	}
}
