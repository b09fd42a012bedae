package policyhcl

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/zclconf/go-cty/cty"
)

// rateLimit is a decoded rate_limit block inside a service block: a token
// bucket in the service's own sidecars, checked after authorization.
//
//	rate_limit "search" {
//	  requests_per_second = 10      # refill rate; may be fractional (0.5)
//	  burst               = 20      # bucket size; default: requests_per_second, at least 1
//	  per_caller          = true    # a bucket per calling service
//	  per_jwt_subject     = "corp"  # a bucket per end user: the sub of their token of this jwt_provider
//	  per_source_ip       = true    # a bucket per client IP address, per /64 for IPv6 (at most 10,000, refilled ones dropped first)
//	  callers             = ["web"] # only these callers; default every caller
//	  match { path_prefix = "/search" } # only these requests; default every request
//	  scope               = "local" # "global": the rate and burst hold across every
//	                                # instance of the service (not per caller, end user or address)
//	}
type rateLimit struct {
	policy.RateLimit
	NameRange    hcl.Range
	CallersRange hcl.Range
	ScopeRange   hcl.Range
	// PerJWTSubjectRange is where per_jwt_subject names its provider.
	PerJWTSubjectRange hcl.Range
	DeclRange          hcl.Range
	grpc               *match // the match, when it names a gRPC service
}

var rateLimitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "requests_per_second", Required: true}, {Name: "burst"}, {Name: "per_caller"}, {Name: "callers"}, {Name: "per_jwt_subject"},
		{Name: "per_source_ip"}, {Name: "scope"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "match"}},
}

func decodeRateLimitBlock(block *hcl.Block) (*rateLimit, hcl.Diagnostics) {
	rl := &rateLimit{NameRange: block.LabelRanges[0], DeclRange: block.DefRange}
	rl.Name = block.Labels[0]
	var diags hcl.Diagnostics
	if !model.ValidName(rl.Name) {
		diags = append(diags, errorAt(rl.NameRange, "Invalid rate limit name",
			fmt.Sprintf("The rate limit name %q is not a DNS label. Use lower-case letters, digits and dashes, such as \"search\".", rl.Name)))
	}
	content, d := block.Body.Content(rateLimitSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["requests_per_second"]; ok {
		val, d := attrValue(attr, cty.Number)
		diags = append(diags, d...)
		if !d.HasErrors() {
			var f float64
			if !val.IsNull() {
				f, _ = val.AsBigFloat().Float64()
			}
			if val.IsNull() || f < 0.001 || f > 1e6 {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid rate",
					"requests_per_second must be a number from 0.001 to 1000000. For fewer than one request a second, give a fraction: 0.1 is one request every ten seconds."))
			} else {
				rl.RequestsPerSecond = f
			}
		}
	}
	rl.Burst = max(1, int(rl.RequestsPerSecond))
	if attr, ok := content.Attributes["burst"]; ok {
		n, set, d := decodeInt(attr, 1, 1000000, "burst")
		diags = append(diags, d...)
		if set {
			rl.Burst = n
		}
	}
	if attr, ok := content.Attributes["per_caller"]; ok {
		b, _, d := decodeBool(attr)
		diags = append(diags, d...)
		rl.PerCaller = b
	}
	if attr, ok := content.Attributes["per_jwt_subject"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			rl.PerJWTSubject, rl.PerJWTSubjectRange = s, attr.Expr.Range()
		}
	}
	if attr, ok := content.Attributes["per_source_ip"]; ok {
		b, _, d := decodeBool(attr)
		diags = append(diags, d...)
		rl.PerSourceIP = b
	}
	if attr, ok := content.Attributes["callers"]; ok {
		list, d := decodeStringList(attr)
		diags = append(diags, d...)
		rl.Callers, rl.CallersRange = list, attr.Expr.Range()
	}
	if attr, ok := content.Attributes["scope"]; ok {
		diags = append(diags, decodeRateLimitScope(rl, attr)...)
	}
	for i, b := range content.Blocks {
		if i > 0 {
			diags = append(diags, errorAt(b.DefRange, "Duplicate match block",
				"A rate limit has one match block. Write a second rate_limit block for other requests."))
			continue
		}
		m, d := decodeMatchBlock(b)
		diags = append(diags, d...)
		rl.Match, rl.grpc = m.Match, m
		if !m.GRPC {
			rl.grpc = nil
		}
	}
	return rl, diags
}

// decodeRateLimitScope decodes a rate limit's scope: "local" (each
// instance's sidecar counts on its own, the default) or "global".
func decodeRateLimitScope(rl *rateLimit, attr *hcl.Attribute) hcl.Diagnostics {
	scope, set, diags := decodeString(attr)
	if !set || diags.HasErrors() {
		return diags
	}
	rl.ScopeRange = attr.Expr.Range()
	switch scope {
	case "local":
	case "global":
		rl.Global = true
		if rl.PerCaller {
			diags = append(diags, errorAt(rl.ScopeRange, "Global rate limit per caller",
				"A global rate limit is one budget shared by every instance of the service; it cannot also be per_caller. Remove per_caller, or set scope = \"local\"."))
		}
		if rl.PerJWTSubject != "" {
			diags = append(diags, errorAt(rl.ScopeRange, "Global rate limit per end user",
				"A global rate limit is one budget shared by every instance of the service; it cannot also be per_jwt_subject (end users' buckets are kept by each instance). Remove per_jwt_subject, or set scope = \"local\"."))
		}
		if rl.PerSourceIP {
			diags = append(diags, errorAt(rl.ScopeRange, "Global rate limit per source address",
				"A global rate limit is one budget shared by every instance of the service; it cannot also be per_source_ip (client addresses' buckets are kept by each instance). Remove per_source_ip, or set scope = \"local\"."))
		}
	default:
		diags = append(diags, errorAt(rl.ScopeRange, "Invalid rate limit scope",
			fmt.Sprintf("The scope %q is not one of \"local\" (each instance counts on its own, the default) and \"global\" (the limit holds across every instance of the service).", scope)))
	}
	return diags
}

// connectionLimit is a decoded connection_limit block inside a service
// block: the most connections each of its sidecars accepts.
//
//	connection_limit {
//	  max            = 1000 # in all
//	  max_per_caller = 100  # from one calling service
//	}
type connectionLimit struct {
	policy.ConnectionLimit
	DeclRange hcl.Range
}

var connectionLimitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max"}, {Name: "max_per_caller"}},
}

func decodeConnectionLimitBlock(block *hcl.Block) (*connectionLimit, hcl.Diagnostics) {
	cl := &connectionLimit{DeclRange: block.DefRange}
	content, diags := block.Body.Content(connectionLimitSchema)
	if attr, ok := content.Attributes["max"]; ok {
		n, _, d := decodeInt(attr, 1, 1000000, "connection limit")
		diags = append(diags, d...)
		cl.Max = n
	}
	if attr, ok := content.Attributes["max_per_caller"]; ok {
		n, _, d := decodeInt(attr, 1, 1000000, "connection limit")
		diags = append(diags, d...)
		cl.MaxPerCaller = n
	}
	if cl.Max == 0 && cl.MaxPerCaller == 0 && !diags.HasErrors() {
		diags = append(diags, errorAt(cl.DeclRange, "Empty connection limit",
			"This connection_limit caps nothing. Set max, max_per_caller or both, or remove the block."))
	}
	return cl, diags
}

// checkLimitProtocols reports rate limits on services that see no
// requests: a TCP service's, unless a gateway runs as it (gateways: the
// services gateways run as), whose HTTP listeners see requests whatever
// its protocol.
func checkLimitProtocols(services []*service, gateways map[string]bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range services {
		if s.Protocol != policy.TCP || gateways[s.Name] {
			continue
		}
		for _, rl := range s.RateLimits {
			diags = append(diags, errorAt(rl.DeclRange, "Rate limit on a TCP service",
				fmt.Sprintf("Service %q speaks \"tcp\", so its sidecars see bytes, not requests. Set its protocol to \"http\", \"http2\" or \"grpc\", or use a connection_limit.", s.Name)))
		}
	}
	return diags
}

// checkLimits checks a service's rate limits: names are unique, a gRPC
// match is on a gRPC service (checkLimitProtocols: they need requests).
func checkLimits(s *service) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]*rateLimit{}
	for _, rl := range s.RateLimits {
		if prev, dup := seen[rl.Name]; dup {
			diags = append(diags, errorAt(rl.NameRange, "Duplicate rate limit",
				fmt.Sprintf("Service %q already has a rate limit %q at %s. Rename one of them.", s.Name, rl.Name, at(prev.DeclRange))))
		}
		seen[rl.Name] = rl
		if rl.grpc != nil && s.Protocol != policy.GRPC {
			diags = append(diags, errorAt(rl.grpc.GRPCRange, "gRPC match on a non-gRPC service",
				fmt.Sprintf("Service %q speaks %q, not gRPC. Match on a path instead, or set protocol = \"grpc\".", s.Name, s.Protocol)))
		}
	}
	return diags
}

// checkLimitCallers reports rate limits naming undeclared callers.
func checkLimitCallers(services []*service, declared map[string]*service) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var names []string
	for n := range declared {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, s := range services {
		for _, rl := range s.RateLimits {
			for _, c := range rl.Callers {
				if _, ok := declared[c]; !ok {
					diags = append(diags, errorAt(rl.CallersRange, "Unknown caller",
						fmt.Sprintf("Rate limit %q of service %q names the caller %q, but no service %q is declared. ", rl.Name, s.Name, c, c)+declaredHint(c, names)))
				}
			}
		}
	}
	return diags
}
