package compile

import (
	"net/netip"
	"sort"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

// UpstreamPortPrefix names an instance port that overrides the policy's
// local_port for one upstream of that instance: a port "upstream:api" is
// where the instance's sidecar listens for calls to api. Schedulers whose
// instances share a host address (Nomad host networking) allocate these.
const UpstreamPortPrefix = "upstream:"

// Compile returns the proxy configuration of every instance, keyed by
// instance ID. A Compiler gives the same configurations, compiling again
// only those a change touches.
func Compile(p *policy.Policy, entries []registry.Entry) map[string]*meshapi.ProxyConfig {
	out := make(map[string]*meshapi.ProxyConfig, len(entries))
	idx := newEndpointIndex(servable(p, entries))
	authzOf := map[string]*meshapi.Authz{}
	for _, e := range entries {
		in := e.Instance
		if _, ok := authzOf[in.Service]; !ok {
			authzOf[in.Service] = authz(p, in.Service)
		}
		out[in.ID] = instanceConfig(p, idx, authzOf[in.Service], in)
	}
	return out
}

// endpointSource gives the endpoint list of a service in a namespace:
// Compile's endpointIndex, built once per compilation, and the
// Compiler, which keeps each list until an instance in it changes.
type endpointSource interface {
	endpoints(svc policy.Service, ns string) []*meshapi.Endpoint
}

// instanceConfig compiles the configuration of one instance. az is its
// service's authorization (authz), shared by every instance of it.
func instanceConfig(p *policy.Policy, idx endpointSource, az *meshapi.Authz, in model.Instance) *meshapi.ProxyConfig {
	td := p.Mesh.TrustDomain
	svc := serviceOf(p, in.Service)
	meshBind, meshPort := inboundBind(in)
	cfg := &meshapi.ProxyConfig{
		InstanceId:  in.ID,
		Service:     in.Service,
		Namespace:   in.NS(),
		SpiffeId:    spiffe.ID(td, in.NS(), in.Service),
		TrustDomain: td,
		Labels:      in.Labels,
		Inbound: &meshapi.Inbound{
			BindAddress: meshBind,
			Port:        meshPort,
			AppAddress:  localAddress(in.Address),
			AppPort:     uint32(in.Ports[model.PortApp]),
			Protocol:    protocol(svc.Protocol),
			Authz:       az,
			RateLimits:  rateLimits(svc.RateLimits),
			// gateway.go: whose X-Forwarded-For and -Proto the app gets.
			ForwardingCallers: gatewayCallers(p),
		},
		HealthCheck: healthCheck(svc.HealthCheck),
		Tracing:     tracing(p.Mesh.Tracing, in.Service, in.NS()),
		Egress:      egress(p, svc),
	}
	cfg.Inbound.Jwt, cfg.JwtProviders = jwtInbound(p, svc, az)
	cfg.Protection = protection(p.Mesh.Protection)
	if sp := svc.Protection; sp != nil {
		merged := sp.Over(p.Mesh.Protection)
		cfg.Inbound.Protection = protection(&merged)
	}
	if cl := svc.ConnectionLimit; cl != (policy.ConnectionLimit{}) {
		cfg.Inbound.ConnectionLimit = &meshapi.ConnectionLimit{Max: uint32(cl.Max), MaxPerCaller: uint32(cl.MaxPerCaller)}
	}
	for _, u := range svc.Upstreams {
		dst := serviceOf(p, u.Service)
		localPort := u.LocalPort
		if port, ok := in.Ports[UpstreamPortPrefix+u.Service]; ok {
			localPort = port
		}
		up := &meshapi.Upstream{
			Name:        u.Service,
			Service:     u.Service,
			SpiffeId:    spiffe.ID(td, nsOr(dst.Namespace), u.Service),
			BindAddress: localAddress(in.Address),
			LocalPort:   uint32(localPort),
			Protocol:    protocol(dst.Protocol),
			Lb:          lb(u.LB),
			Endpoints:   idx.endpoints(dst, nsOr(dst.Namespace)),
			Routes:      routes(p, idx, dst.Routes, in.Service),
			Timeouts:    timeouts(dst.Timeouts),
			Hash:        hashPolicy(u.Hash),
		}
		cfg.Upstreams = append(cfg.Upstreams, up)
		if dst.External != nil {
			up.External, up.Endpoints = external(p, dst) // external.go
		}
		upstreamProtection(up, dst)
	}
	if g, ok := p.GatewayOf(in.Service); ok {
		gatewayConfig(p, idx, g, in, cfg) // gateway.go
	}
	return cfg
}

// upstreamProtection sets what protects callers of dst on up: its
// circuit breaker and outlier detection.
func upstreamProtection(up *meshapi.Upstream, dst policy.Service) {
	if cb := dst.CircuitBreaker; cb != nil {
		up.CircuitBreaker = &meshapi.CircuitBreaker{
			MaxConnections: uint32(cb.MaxConnections), MaxRequests: uint32(cb.MaxRequests),
			MaxPending: uint32(cb.MaxPending), MaxRetries: uint32(cb.MaxRetries),
		}
	}
	if od := dst.OutlierDetection; od != nil {
		up.OutlierDetection = &meshapi.OutlierDetection{
			Consecutive_5Xx:          uint32(od.Consecutive5xx),
			ConsecutiveGatewayErrors: uint32(od.ConsecutiveGatewayErrors),
			ConsecutiveLocalFailures: uint32(od.ConsecutiveLocalFailures),
			Interval:                 duration(od.Interval),
			BaseEjectionTime:         duration(od.BaseEjectionTime),
			MaxEjectedPercent:        uint32(od.MaxEjectedPercent),
			SuccessRate:              outlierSuccessRate(od.SuccessRate),
		}
	}
}

// localAddress is where an instance's app and outbound listeners bind: the
// instance's own address when it is a loopback address (the local adapter
// gives each instance its own 127.0.0.x), else 127.0.0.1. Never a routable
// address: an outbound listener there would let any host call as the
// instance, and an app there could be reached past its sidecar.
func localAddress(addr string) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.IsLoopback() {
		return addr
	}
	return "127.0.0.1"
}

// inboundBind is where the sidecar's inbound listener binds: the instance's
// MeshListen when its adapter set one (a host port mapped into the
// instance's network namespace), else Address:Ports[mesh], where callers
// dial.
func inboundBind(in model.Instance) (string, uint32) {
	if ap, err := netip.ParseAddrPort(in.MeshListen); err == nil && ap.Port() != 0 {
		return ap.Addr().Unmap().String(), uint32(ap.Port())
	}
	return in.Address, uint32(in.Ports[model.PortMesh])
}

func serviceOf(p *policy.Policy, name string) policy.Service {
	if s, ok := p.Services[name]; ok {
		return s
	}
	return policy.Service{Name: name, Protocol: policy.TCP}
}

func nsOr(ns string) string {
	if ns == "" {
		return model.DefaultNamespace
	}
	return ns
}

// endpointIndex groups the instances by service and namespace once per
// Compile, and builds each upstream service's endpoint list once: every
// caller of a service shares it (nothing mutates a compiled config), so a
// compilation costs instances x upstreams, not instances x upstreams x
// instances.
type endpointIndex struct {
	groups map[string][]registry.Entry
	built  map[string][]*meshapi.Endpoint
}

func newEndpointIndex(entries []registry.Entry) *endpointIndex {
	idx := &endpointIndex{groups: map[string][]registry.Entry{}, built: map[string][]*meshapi.Endpoint{}}
	for _, e := range entries {
		k := groupKey(e.Instance.NS(), e.Instance.Service)
		idx.groups[k] = append(idx.groups[k], e)
	}
	return idx
}

// endpoints returns the instances of svc in namespace ns that are not
// critical, sorted by instance ID, with the subsets each belongs to.
func (idx *endpointIndex) endpoints(svc policy.Service, ns string) []*meshapi.Endpoint {
	k := groupKey(ns, svc.Name)
	if eps, ok := idx.built[k]; ok {
		return eps
	}
	eps := endpointList(svc, idx.groups[k])
	idx.built[k] = eps
	return eps
}

// groupKey names the instances of a service in a namespace.
func groupKey(ns, service string) string { return ns + "/" + service }

// endpointList is the endpoints of group (instances of svc, in any
// order) that are not critical, sorted by instance ID, with the subsets
// each belongs to.
func endpointList(svc policy.Service, group []registry.Entry) []*meshapi.Endpoint {
	var eps []*meshapi.Endpoint
	for _, e := range group {
		in := e.Instance
		if in.Health == model.HealthCritical {
			continue
		}
		ep := &meshapi.Endpoint{
			InstanceId: in.ID,
			Address:    in.Address,
			Port:       uint32(in.Ports[model.PortMesh]),
			Meta:       in.Meta,
		}
		for _, ss := range svc.Subsets {
			if ss.Contains(in.Meta, in.Tags) {
				ep.Subsets = append(ep.Subsets, ss.Name)
			}
		}
		eps = append(eps, ep)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].InstanceId < eps[j].InstanceId })
	return eps
}

// authz resolves the intentions that can apply to destination into rules:
// one per named source (namespace and service), with policy.DecideCaller's
// answer for it; one per namespace that a "ns/*" intention names, holding
// the answer for any other service of that namespace; and one for "*"
// holding the answer for any other caller, when some wildcard intention
// applies. A source written without a namespace is resolved here to the
// destination's namespace, so every rule names its namespace.
// Authz is the authorization rules every sidecar of destination gets
// (what `weft authz` decides with, as the sidecar would).
func Authz(p *policy.Policy, destination string) *meshapi.Authz { return authz(p, destination) }

func authz(p *policy.Policy, destination string) *meshapi.Authz {
	a := &meshapi.Authz{DefaultAction: action(p.Mesh.DefaultAction)}
	dstNS := p.Namespace(destination)
	sources := map[policy.Caller]bool{}
	wildcard := false
	for _, in := range p.Intentions {
		if in.Destination != policy.Wildcard && in.Destination != destination {
			continue
		}
		switch ns := in.SourceNamespace; {
		case in.Source == policy.Wildcard && (ns == "" || ns == policy.Wildcard):
			wildcard = true
		case ns == "":
			sources[policy.Caller{Namespace: dstNS, Service: in.Source}] = true
		default:
			sources[policy.Caller{Namespace: ns, Service: in.Source}] = true
		}
	}
	keys := make([]policy.Caller, 0, len(sources))
	for c := range sources {
		keys = append(keys, c)
	}
	// Named services first, then namespaces, each sorted: the order the
	// sidecar's precedence reads them in.
	sort.Slice(keys, func(i, j int) bool {
		wi, wj := keys[i].Service == policy.Wildcard, keys[j].Service == policy.Wildcard
		if wi != wj {
			return wj
		}
		if keys[i].Service != keys[j].Service {
			return keys[i].Service < keys[j].Service
		}
		return keys[i].Namespace < keys[j].Namespace
	})
	for _, c := range keys {
		caller := c
		if c.Service == policy.Wildcard {
			// Any service of the namespace that no intention names: an
			// empty service name matches only wildcard sources.
			caller.Service = ""
		}
		a.Rules = append(a.Rules, rule(p, c, caller, destination))
	}
	if wildcard {
		// A caller named by no intention, in no namespace any names: only
		// intentions from "*" can match it.
		a.Rules = append(a.Rules, rule(p, policy.Caller{Namespace: policy.Wildcard, Service: policy.Wildcard}, policy.Caller{}, destination))
	}
	return a
}

// rule is the authorization rule for callers named source: the action of
// the intention that wins for caller, or its permissions.
func rule(p *policy.Policy, source, caller policy.Caller, destination string) *meshapi.AuthzRule {
	act, _ := p.DecideCaller(caller, destination)
	r := &meshapi.AuthzRule{Source: source.Service, SourceNamespace: source.Namespace, Action: action(act)}
	if in := p.WinnerFor(caller, destination); in != nil {
		for _, perm := range in.Permissions {
			r.Permissions = append(r.Permissions, &meshapi.Permission{Action: action(perm.Action), Match: routeMatch(perm.Match), Jwt: jwtMatch(perm.JWT)})
		}
	}
	return r
}

func action(a policy.Action) meshapi.Action {
	if a == policy.Allow {
		return meshapi.Action_ACTION_ALLOW
	}
	return meshapi.Action_ACTION_DENY
}

func protocol(p policy.Protocol) meshapi.Protocol {
	switch p {
	case policy.HTTP:
		return meshapi.Protocol_PROTOCOL_HTTP
	case policy.HTTP2:
		return meshapi.Protocol_PROTOCOL_HTTP2
	case policy.GRPC:
		return meshapi.Protocol_PROTOCOL_GRPC
	default:
		return meshapi.Protocol_PROTOCOL_TCP
	}
}

func lb(l policy.LB) meshapi.LB {
	switch l {
	case policy.LeastRequest:
		return meshapi.LB_LB_LEAST_REQUEST
	case policy.Random:
		return meshapi.LB_LB_RANDOM
	case policy.RingHash:
		return meshapi.LB_LB_RING_HASH
	case policy.Maglev:
		return meshapi.LB_LB_MAGLEV
	}
	return meshapi.LB_LB_ROUND_ROBIN
}

func hashPolicy(h *policy.Hash) *meshapi.HashPolicy {
	if h == nil {
		return nil
	}
	return &meshapi.HashPolicy{Header: h.Header, Cookie: h.Cookie, SourceIdentity: h.SourceIdentity}
}
