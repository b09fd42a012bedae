package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// route is a decoded route block inside a service block. The service's
// routes apply, in order, in the sidecar of every caller; the first whose
// match blocks (any of them) hold takes the request:
//
//	route "canary" {
//	  match { header "x-canary" { exact = "1" } }
//	  split "v2" { weight = 100 }
//	  retry { attempts = 3 }
//	  timeouts { request = "2s" }
//	  request_headers  { set = { "x-route" = "canary" } }
//	  response_headers { remove = ["server"] }
//	}
type route struct {
	Name      string
	NameRange hcl.Range
	Matches   []*match
	Splits    []*split
	Retry     *retry
	Timeouts  *timeouts
	ReqHdrs   *headerOps
	RespHdrs  *headerOps
	Fault     *fault
	Mirror    *mirror

	DeclRange hcl.Range
}

var routeSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "match"},
		{Type: "split", LabelNames: []string{"subset"}},
		{Type: "retry"},
		{Type: "timeouts"},
		{Type: "request_headers"},
		{Type: "response_headers"},
		{Type: "fault"},
		{Type: "mirror", LabelNames: []string{"service"}},
	},
}

func decodeRouteBlock(block *hcl.Block) (*route, hcl.Diagnostics) {
	r := &route{Name: block.Labels[0], NameRange: block.LabelRanges[0], DeclRange: block.DefRange}
	var diags hcl.Diagnostics
	if !model.ValidName(r.Name) {
		diags = append(diags, errorAt(r.NameRange, "Invalid route name",
			fmt.Sprintf("The route name %q is not a DNS label. Use lower-case letters, digits and dashes, such as \"canary\".", r.Name)))
	}
	diags = append(diags, r.decodeBody(block.Body)...)
	return r, diags
}

// decodeBody decodes the blocks of a route's body into r: a service's
// route, or (hcl/gateway.listener.route.go) a gateway's, whose hosts and
// service attributes the caller has taken out of body.
func (r *route) decodeBody(body hcl.Body) hcl.Diagnostics {
	content, diags := body.Content(routeSchema)
	where := fmt.Sprintf("Route %q", r.Name)
	for _, b := range content.Blocks {
		switch b.Type {
		case "match":
			m, d := decodeMatchBlock(b)
			diags = append(diags, d...)
			r.Matches = append(r.Matches, m)
		case "split":
			s, d := decodeSplitBlock(b)
			diags = append(diags, d...)
			r.Splits = append(r.Splits, s)
		case "retry":
			rt, d := decodeRetryBlock(b)
			diags = append(diags, d...)
			if r.Retry != nil {
				diags = append(diags, duplicateBlock("retry", where, r.Retry.DeclRange, b.DefRange))
				continue
			}
			r.Retry = rt
		case "timeouts":
			t, d := decodeTimeoutsBlock(b, routeTimeoutsSchema)
			diags = append(diags, d...)
			if r.Timeouts != nil {
				diags = append(diags, duplicateBlock("timeouts", where, r.Timeouts.DeclRange, b.DefRange))
				continue
			}
			r.Timeouts = t
		case "mirror":
			m, d := decodeMirrorBlock(b)
			diags = append(diags, d...)
			if r.Mirror != nil {
				diags = append(diags, duplicateBlock("mirror", where, r.Mirror.DeclRange, b.DefRange))
				continue
			}
			r.Mirror = m
		case "fault":
			f, d := decodeFaultBlock(b)
			diags = append(diags, d...)
			if r.Fault != nil {
				diags = append(diags, duplicateBlock("fault", where, r.Fault.DeclRange, b.DefRange))
				continue
			}
			r.Fault = f
		case "request_headers", "response_headers":
			h, d := decodeHeaderOpsBlock(b)
			diags = append(diags, d...)
			dst := &r.ReqHdrs
			if b.Type == "response_headers" {
				dst = &r.RespHdrs
			}
			if *dst != nil {
				diags = append(diags, duplicateBlock(b.Type, where, (*dst).DeclRange, b.DefRange))
				continue
			}
			*dst = h
		}
	}
	diags = append(diags, r.checkSplits()...)
	if r.Retry != nil && r.Timeouts != nil && r.Retry.PerTryTimeout > 0 && r.Timeouts.Request > 0 && r.Retry.PerTryTimeout >= r.Timeouts.Request {
		diags = append(diags, errorAt(r.Retry.PerTryRange, "Per-try timeout not below request timeout",
			fmt.Sprintf("The per-try timeout %v is not shorter than the route's request timeout %v (at %s), so no retry could ever start. "+
				"Make per_try_timeout shorter than the request timeout, or drop one of them.", r.Retry.PerTryTimeout, r.Timeouts.Request, at(r.Timeouts.RequestRange))))
	}
	return diags
}

// checkSplits checks the weights of a route: they add up to 100, and no
// subset appears twice.
func (r *route) checkSplits() hcl.Diagnostics {
	if len(r.Splits) == 0 {
		return nil
	}
	var diags hcl.Diagnostics
	total := 0
	seen := map[string]*split{}
	for _, s := range r.Splits {
		total += s.Weight
		if prev, dup := seen[s.Subset]; dup {
			diags = append(diags, errorAt(s.SubsetRange, "Duplicate split",
				fmt.Sprintf("Route %q already splits to subset %q at %s. Give each subset one split and add up the weights.", r.Name, s.Subset, at(prev.DeclRange))))
			continue
		}
		seen[s.Subset] = s
	}
	if total != 100 && !diags.HasErrors() {
		for _, s := range r.Splits {
			if !s.WeightSet {
				return diags // reported already
			}
		}
		diags = append(diags, errorAt(r.Splits[0].DeclRange, "Weights do not add up to 100",
			fmt.Sprintf("The split weights of route %q add up to %d. Weights are percentages of the route's requests: make them add up to 100.", r.Name, total)))
	}
	return diags
}

// checkRoutes checks a service's routes against the service: names are
// unique, splits name declared subsets, routes need an HTTP protocol, and
// no route hides behind one that matches every request.
func checkRoutes(s *service) hcl.Diagnostics {
	var diags hcl.Diagnostics
	subsets := map[string]bool{}
	var names []string
	for _, ss := range s.Subsets {
		subsets[ss.Name] = true
		names = append(names, ss.Name)
	}
	seen := map[string]*route{}
	var catchAll *route
	for _, r := range s.Routes {
		if s.Protocol == policy.TCP {
			diags = append(diags, errorAt(r.DeclRange, "Route on a TCP service",
				fmt.Sprintf("Service %q speaks %q, so its sidecars see bytes, not requests, and cannot route them. "+
					"Set protocol = \"http\", \"http2\" or \"grpc\" on the service, or remove the route.", s.Name, s.Protocol)))
		}
		if prev, dup := seen[r.Name]; dup {
			diags = append(diags, errorAt(r.NameRange, "Duplicate route",
				fmt.Sprintf("Service %q already has a route %q at %s. Rename one of them.", s.Name, r.Name, at(prev.DeclRange))))
		}
		seen[r.Name] = r
		if catchAll != nil {
			diags = append(diags, errorAt(r.DeclRange, "Unreachable route",
				fmt.Sprintf("Route %q comes after route %q (at %s), which matches every request, so it never applies. "+
					"Move it before %q, or give %q a match block.", r.Name, catchAll.Name, at(catchAll.DeclRange), catchAll.Name, catchAll.Name)))
		} else if len(r.Matches) == 0 {
			catchAll = r
		}
		if rt := r.Retry; rt != nil && rt.PerTryTimeout > 0 && (r.Timeouts == nil || r.Timeouts.Request == 0) &&
			s.Timeouts != nil && s.Timeouts.Request > 0 && rt.PerTryTimeout >= s.Timeouts.Request {
			diags = append(diags, errorAt(rt.PerTryRange, "Per-try timeout not below request timeout",
				fmt.Sprintf("The per-try timeout %v is not shorter than service %q's request timeout %v (at %s), which this route inherits, so no retry could ever start. "+
					"Make per_try_timeout shorter, or give the route a longer request timeout.", rt.PerTryTimeout, s.Name, s.Timeouts.Request, at(s.Timeouts.RequestRange))))
		}
		for _, m := range r.Matches {
			if m.GRPC && s.Protocol != policy.GRPC {
				diags = append(diags, errorAt(m.GRPCRange, "gRPC match on a non-gRPC service",
					fmt.Sprintf("Service %q speaks %q, not gRPC. Match on a path instead, or set protocol = \"grpc\".", s.Name, s.Protocol)))
			}
		}
		for _, sp := range r.Splits {
			if subsets[sp.Subset] {
				continue
			}
			detail := fmt.Sprintf("Route %q splits to subset %q, but service %q declares no such subset. ", r.Name, sp.Subset, s.Name)
			if len(names) == 0 {
				detail += fmt.Sprintf("It declares no subsets at all; add one: subset %q { meta = { version = \"...\" } }.", sp.Subset)
			} else {
				detail += fmt.Sprintf("Its subsets are %s.", quoteList(names, "and"))
				if sugg := suggest(sp.Subset, names); sugg != "" {
					detail += fmt.Sprintf(" Did you mean %q?", sugg)
				}
			}
			diags = append(diags, errorAt(sp.SubsetRange, "Unknown subset", detail))
		}
	}
	return diags
}

func (r *route) toPolicy() policy.Route {
	pr := policy.Route{Name: r.Name}
	for _, m := range r.Matches {
		pr.Matches = append(pr.Matches, m.Match)
	}
	for _, s := range r.Splits {
		pr.Splits = append(pr.Splits, policy.Split{Subset: s.Subset, Weight: s.Weight})
	}
	if r.Retry != nil {
		rt := r.Retry.Retry
		pr.Retry = &rt
	}
	if r.Timeouts != nil {
		pr.Timeouts = r.Timeouts.Timeouts
	}
	if r.ReqHdrs != nil {
		pr.RequestHeaders = r.ReqHdrs.HeaderOps
	}
	if r.RespHdrs != nil {
		pr.ResponseHeaders = r.RespHdrs.HeaderOps
	}
	if r.Fault != nil {
		f := r.Fault.Fault
		pr.Fault = &f
	}
	if r.Mirror != nil {
		m := r.Mirror.Mirror
		pr.Mirror = &m
	}
	return pr
}
