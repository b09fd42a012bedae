package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// Defaults of the service block.
const (
	DefaultProtocol = policy.TCP
)

// service is a decoded service block.
type service struct {
	Name           string
	NameRange      hcl.Range
	Namespace      string
	NamespaceRange hcl.Range // zero when defaulted
	Protocol       policy.Protocol
	ProtocolRange  hcl.Range // zero when defaulted
	Upstreams      []*upstream
	Subsets        []*subset
	Routes         []*route
	Timeouts       *timeouts
	RateLimits     []*rateLimit
	ConnLimit      *connectionLimit
	Breaker        *circuitBreaker
	Outliers       *outlierDetection
	Bindings       []*binding
	Health         *healthCheck
	JWT            *serviceJWT      // service.jwt.go
	Protection     *protection      // service.protection.go
	ProxyMode      policy.ProxyMode // proxy_mode.go; "": the mesh's default

	DeclRange hcl.Range
}

var serviceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "namespace"},
		{Name: "protocol"},
		{Name: "proxy_mode"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "upstream", LabelNames: []string{"service"}},
		{Type: "subset", LabelNames: []string{"name"}},
		{Type: "route", LabelNames: []string{"name"}},
		{Type: "timeouts"},
		{Type: "rate_limit", LabelNames: []string{"name"}},
		{Type: "connection_limit"},
		{Type: "circuit_breaker"},
		{Type: "outlier_detection"},
		{Type: "binding", LabelNames: []string{"scheduler"}},
		{Type: "health_check"},
		{Type: "jwt"},
		{Type: "protection"},
	},
}

var protocols = []policy.Protocol{policy.TCP, policy.HTTP, policy.HTTP2, policy.GRPC}

func decodeServiceBlock(block *hcl.Block) (*service, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	s := &service{
		Name:      block.Labels[0],
		NameRange: block.LabelRanges[0],
		Namespace: model.DefaultNamespace,
		Protocol:  DefaultProtocol,
		DeclRange: block.DefRange,
	}
	if !model.ValidName(s.Name) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid service name",
			Detail: fmt.Sprintf("The service name %q is not a DNS label. Use lower-case letters, digits and dashes, "+
				"starting and ending with a letter or digit, at most 63 characters.", s.Name),
			Subject: s.NameRange.Ptr(),
			Context: s.DeclRange.Ptr(),
		})
	}

	content, moreDiags := block.Body.Content(serviceSchema)
	diags = append(diags, moreDiags...)

	if attr, ok := content.Attributes["namespace"]; ok {
		ns, set, valDiags := decodeString(attr)
		diags = append(diags, valDiags...)
		if set {
			s.NamespaceRange = attr.Expr.Range()
			if !model.ValidName(ns) {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid namespace",
					Detail: fmt.Sprintf("The namespace %q of service %q is not a DNS label. Use lower-case letters, digits and dashes, "+
						"starting and ending with a letter or digit, at most 63 characters.", ns, s.Name),
					Subject: s.NamespaceRange.Ptr(),
					Context: attr.Range.Ptr(),
				})
			} else {
				s.Namespace = ns
			}
		}
	}

	if attr, ok := content.Attributes["protocol"]; ok {
		p, set, valDiags := decodeEnum(attr, protocols, "Invalid protocol", "protocol")
		diags = append(diags, valDiags...)
		if set {
			s.Protocol = p
			s.ProtocolRange = attr.Expr.Range()
		}
	}

	if attr, ok := content.Attributes["proxy_mode"]; ok {
		m, set, valDiags := decodeProxyMode(attr)
		diags = append(diags, valDiags...)
		if set {
			s.ProxyMode = m
		}
	}

	seen := map[string]*upstream{}
	ports := map[int]*upstream{}
	subsets := map[string]*subset{}
	bindings := map[string]*binding{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "binding":
			bd, d := decodeBindingBlock(b, s.Name)
			diags = append(diags, d...)
			if bd == nil {
				continue
			}
			if prev, dup := bindings[bd.key()]; dup {
				diags = append(diags, errorAt(bd.DeclRange, "Duplicate binding",
					fmt.Sprintf("Service %q already has this binding at %s. Remove one of the two.", s.Name, at(prev.DeclRange))))
				continue
			}
			bindings[bd.key()] = bd
			s.Bindings = append(s.Bindings, bd)
			continue
		case "subset":
			ss, d := decodeSubsetBlock(b)
			diags = append(diags, d...)
			if prev, dup := subsets[ss.Name]; dup {
				diags = append(diags, errorAt(ss.NameRange, "Duplicate subset",
					fmt.Sprintf("Service %q already has a subset %q at %s. Rename one of them or merge the two.", s.Name, ss.Name, at(prev.DeclRange))))
				continue
			}
			subsets[ss.Name] = ss
			s.Subsets = append(s.Subsets, ss)
			continue
		case "route":
			r, d := decodeRouteBlock(b)
			diags = append(diags, d...)
			s.Routes = append(s.Routes, r)
			continue
		case "rate_limit":
			rl, d := decodeRateLimitBlock(b)
			diags = append(diags, d...)
			s.RateLimits = append(s.RateLimits, rl)
			continue
		case "circuit_breaker":
			cb, d := decodeCircuitBreakerBlock(b)
			diags = append(diags, d...)
			if s.Breaker != nil {
				diags = append(diags, duplicateBlock("circuit_breaker", fmt.Sprintf("Service %q", s.Name), s.Breaker.DeclRange, b.DefRange))
				continue
			}
			s.Breaker = cb
			continue
		case "outlier_detection":
			od, d := decodeOutlierDetectionBlock(b)
			diags = append(diags, d...)
			if s.Outliers != nil {
				diags = append(diags, duplicateBlock("outlier_detection", fmt.Sprintf("Service %q", s.Name), s.Outliers.DeclRange, b.DefRange))
				continue
			}
			s.Outliers = od
			continue
		case "protection":
			diags = append(diags, decodeServiceProtectionBlock(s, b)...)
			continue
		case "health_check":
			hc, d := decodeHealthCheckBlock(b)
			diags = append(diags, d...)
			if s.Health != nil {
				diags = append(diags, duplicateBlock("health_check", fmt.Sprintf("Service %q", s.Name), s.Health.DeclRange, b.DefRange))
				continue
			}
			s.Health = hc
			continue
		case "jwt":
			j, d := decodeServiceJWTBlock(b)
			diags = append(diags, d...)
			if s.JWT != nil {
				diags = append(diags, duplicateBlock("jwt", fmt.Sprintf("Service %q", s.Name), s.JWT.DeclRange, b.DefRange))
				continue
			}
			s.JWT = j
			continue
		case "connection_limit":
			cl, d := decodeConnectionLimitBlock(b)
			diags = append(diags, d...)
			if s.ConnLimit != nil {
				diags = append(diags, duplicateBlock("connection_limit", fmt.Sprintf("Service %q", s.Name), s.ConnLimit.DeclRange, b.DefRange))
				continue
			}
			s.ConnLimit = cl
			continue
		case "timeouts":
			t, d := decodeTimeoutsBlock(b, serviceTimeoutsSchema)
			diags = append(diags, d...)
			if s.Timeouts != nil {
				diags = append(diags, duplicateBlock("timeouts", fmt.Sprintf("Service %q", s.Name), s.Timeouts.DeclRange, b.DefRange))
				continue
			}
			s.Timeouts = t
			continue
		}
		u, upDiags := decodeUpstreamBlock(b)
		diags = append(diags, upDiags...)
		if prev, dup := seen[u.Service]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate upstream",
				Detail: fmt.Sprintf("Service %q already has an upstream %q, declared at %s. "+
					"Each service may name an upstream only once; remove one of the two blocks.", s.Name, u.Service, at(prev.DeclRange)),
				Subject: u.ServiceRange.Ptr(),
				Context: u.DeclRange.Ptr(),
			})
			continue
		}
		seen[u.Service] = u
		if u.LocalPort != 0 {
			if prev, dup := ports[u.LocalPort]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate local port",
					Detail: fmt.Sprintf("Local port %d of upstream %q is already used by upstream %q of service %q, at %s. "+
						"Each upstream of a service needs its own local port; choose another one.",
						u.LocalPort, u.Service, prev.Service, s.Name, at(prev.LocalPortRange)),
					Subject: u.LocalPortRange.Ptr(),
					Context: u.DeclRange.Ptr(),
				})
			} else {
				ports[u.LocalPort] = u
			}
		}
		s.Upstreams = append(s.Upstreams, u)
	}
	diags = append(diags, checkRoutes(s)...)
	diags = append(diags, checkLimits(s)...)
	return s, diags
}

func (s *service) toPolicy() policy.Service {
	ups := make([]policy.Upstream, 0, len(s.Upstreams))
	for _, u := range s.Upstreams {
		ups = append(ups, u.toPolicy())
	}
	ps := policy.Service{Name: s.Name, Namespace: s.Namespace, Protocol: s.Protocol, Upstreams: ups, ProxyMode: s.ProxyMode}
	for _, ss := range s.Subsets {
		ps.Subsets = append(ps.Subsets, ss.toPolicy())
	}
	for _, r := range s.Routes {
		ps.Routes = append(ps.Routes, r.toPolicy())
	}
	if s.Timeouts != nil {
		ps.Timeouts = s.Timeouts.Timeouts
	}
	for _, rl := range s.RateLimits {
		ps.RateLimits = append(ps.RateLimits, rl.RateLimit)
	}
	if s.ConnLimit != nil {
		ps.ConnectionLimit = s.ConnLimit.ConnectionLimit
	}
	if s.Breaker != nil {
		cb := s.Breaker.CircuitBreaker
		ps.CircuitBreaker = &cb
	}
	if s.Outliers != nil {
		od := s.Outliers.OutlierDetection
		ps.OutlierDetection = &od
	}
	for _, b := range s.Bindings {
		ps.Bindings = append(ps.Bindings, b.toPolicy())
	}
	if s.Health != nil && s.Health.Kind != "" {
		hc := s.Health.HealthCheck
		ps.HealthCheck = &hc
	}
	ps.JWT = s.JWT.toPolicy()
	if s.Protection != nil {
		pp := s.Protection.Protection
		ps.Protection = &pp
	}
	return ps
}
