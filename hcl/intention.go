package policyhcl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// intention is a decoded intention block.
type intention struct {
	Source           string // the label as written: "svc", "ns/svc", "ns/*" or "*"
	SourceRange      hcl.Range
	SourceService    string // "svc" or "*"
	SourceNamespace  string // "" (the destination's namespace), a namespace, or "*"
	badEnds          bool   // decodeEnds reported the source or destination
	Destination      string
	DestinationRange hcl.Range
	Action           policy.Action // "" when missing or invalid
	ActionRange      hcl.Range
	Permissions      []*permission

	DeclRange hcl.Range
}

var intentionSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "action"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "permission"}},
}

func decodeIntentionBlock(block *hcl.Block) (*intention, hcl.Diagnostics) {
	in := &intention{
		Source:           block.Labels[0],
		SourceRange:      block.LabelRanges[0],
		Destination:      block.Labels[1],
		DestinationRange: block.LabelRanges[1],
		DeclRange:        block.DefRange,
	}
	diags := in.decodeEnds()
	content, moreDiags := block.Body.Content(intentionSchema)
	diags = append(diags, moreDiags...)
	if attr, ok := content.Attributes["action"]; ok {
		a, set, valDiags := decodeEnum(attr, actions, "Invalid action", "intention action")
		diags = append(diags, valDiags...)
		switch {
		case set:
			in.Action = a
			in.ActionRange = attr.Expr.Range()
		case !valDiags.HasErrors():
			diags = append(diags, missingArgument(attr))
		}
	}
	for _, b := range content.Blocks {
		p, d := decodePermissionBlock(b)
		diags = append(diags, d...)
		in.Permissions = append(in.Permissions, p)
	}
	actionAttr, hasAction := content.Attributes["action"]
	switch {
	case hasAction && len(in.Permissions) > 0:
		diags = append(diags, errorAt(actionAttr.Range, "Action and permissions",
			fmt.Sprintf("The intention from %q to %q has both an action and permission blocks. "+
				"Give action alone to decide for every request, or permissions alone to decide per request.", in.Source, in.Destination)))
	case !hasAction && len(in.Permissions) == 0:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing required argument",
			Detail:   fmt.Sprintf("The intention from %q to %q says nothing. Set action = \"allow\" or \"deny\", or add permission blocks.", in.Source, in.Destination),
			Subject:  in.DeclRange.Ptr(),
		})
	}
	return in, diags
}

// decodeEnds reads the source label: "svc" is that service in the
// destination's namespace, "ns/svc" that service in namespace ns, "ns/*"
// every service of namespace ns, and "*" every service of every namespace
// of the trust domain. "*/svc" is refused: a service name alone is not an
// identity across namespaces (anyone may create a service of that name in
// a namespace of their own). The destination is a service name or "*";
// its namespace is its service block's.
func (in *intention) decodeEnds() hcl.Diagnostics {
	var diags hcl.Diagnostics
	in.SourceService = in.Source
	if ns, svc, ok := strings.Cut(in.Source, "/"); ok {
		in.SourceNamespace, in.SourceService = ns, svc
		switch {
		case ns == policy.Wildcard:
			in.badEnds = true
			diags = append(diags, errorAt(in.SourceRange, "Invalid intention source",
				fmt.Sprintf("The source %q names service %q in every namespace, but anyone who can create a namespace can run a service of that name there. "+
					"Name the namespace (%q), or use %q for every caller.", in.Source, svc, "ns/"+svc, policy.Wildcard)))
		case !model.ValidName(ns) || (svc != policy.Wildcard && !model.ValidName(svc)):
			in.badEnds = true
			diags = append(diags, errorAt(in.SourceRange, "Invalid intention source",
				fmt.Sprintf("The source %q is not a service. Write %q (a service in the destination's namespace), %q, %q (every service of a namespace) or %q (every caller), "+
					"where namespace and service are DNS labels.", in.Source, "service", "namespace/service", "namespace/*", policy.Wildcard)))
		}
	} else if in.Source == policy.Wildcard {
		in.SourceNamespace = policy.Wildcard
	}
	if strings.Contains(in.Destination, "/") {
		in.badEnds = true
		diags = append(diags, errorAt(in.DestinationRange, "Invalid intention destination",
			fmt.Sprintf("The destination %q has a namespace. Name the service alone: its namespace is the one its service block gives.", in.Destination)))
	}
	return diags
}

// checkIntentions reports intentions naming undeclared services and
// repeated source/destination pairs.
func checkIntentions(intentions []*intention, declared map[string]*service) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names := make([]string, 0, len(declared))
	for n := range declared {
		names = append(names, n)
	}
	sort.Strings(names)

	type pair struct{ src, dst string }
	seen := map[pair]*intention{}
	for _, in := range intentions {
		if in.badEnds {
			continue // decodeEnds said what is wrong
		}
		for _, end := range []struct {
			role, name string
			rng        hcl.Range
		}{
			{"source", in.SourceService, in.SourceRange},
			{"destination", in.Destination, in.DestinationRange},
		} {
			if end.name == policy.Wildcard {
				continue
			}
			if strings.Contains(end.name, "/") {
				continue // reported by decodeEnds
			}
			if s, ok := declared[end.name]; ok {
				if end.role == "source" {
					diags = append(diags, checkSourceNamespace(in, s, declared)...)
				}
				continue
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown intention " + end.role,
				Detail: fmt.Sprintf("The intention from %q to %q names %q as its %s, but no service %q is declared. Use %q to match every service. ",
					in.Source, in.Destination, end.name, end.role, end.name, policy.Wildcard) + declaredHint(end.name, names),
				Subject: end.rng.Ptr(),
				Context: in.DeclRange.Ptr(),
			})
		}

		if len(in.Permissions) > 0 {
			if in.Destination == policy.Wildcard {
				diags = append(diags, errorAt(in.DestinationRange, "Permissions for every destination",
					"Permissions match requests, and only services that speak HTTP or gRPC see requests. Name one destination service instead of \"*\"."))
			} else if dst, ok := declared[in.Destination]; ok && dst.Protocol != policy.GRPC && dst.Protocol != policy.TCP {
				for _, p := range in.Permissions {
					if p.Match != nil && p.Match.GRPC {
						diags = append(diags, errorAt(p.Match.GRPCRange, "gRPC match on a non-gRPC service",
							fmt.Sprintf("Service %q speaks %q, not gRPC. Match on a path instead, or set protocol = \"grpc\" on it.", in.Destination, dst.Protocol)))
					}
				}
			} else if dst, ok := declared[in.Destination]; ok && dst.Protocol == policy.TCP {
				diags = append(diags, errorAt(in.Permissions[0].DeclRange, "Permissions for a TCP service",
					fmt.Sprintf("Service %q speaks \"tcp\", so its sidecars see bytes, not requests, and cannot apply permissions. "+
						"Set its protocol to \"http\", \"http2\" or \"grpc\", or give this intention an action instead.", in.Destination)))
			}
		}

		k := pair{in.canonicalSource(declared), in.Destination}
		if prev, dup := seen[k]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate intention",
				Detail: fmt.Sprintf("An intention from %q to %q is already declared at %s. "+
					"Only one intention may exist for a source and destination pair; remove one of the two blocks.",
					in.Source, in.Destination, at(prev.DeclRange)),
				Subject: in.DeclRange.Ptr(),
			})
			continue
		}
		seen[k] = in
	}
	return diags
}

func (in *intention) toPolicy() policy.Intention {
	pi := policy.Intention{Source: in.SourceService, SourceNamespace: in.SourceNamespace, Destination: in.Destination, Action: in.Action}
	for _, p := range in.Permissions {
		pi.Permissions = append(pi.Permissions, p.toPolicy())
	}
	return pi
}

// sortIntentions orders intentions most specific first, then by source and
// destination.
func sortIntentions(ins []policy.Intention) {
	specificity := func(in policy.Intention) int {
		s := 0
		switch {
		case in.Source != policy.Wildcard:
			s += 4
		case in.SourceNamespace != policy.Wildcard && in.SourceNamespace != "":
			s += 2
		}
		if in.Destination != policy.Wildcard {
			s++
		}
		return s
	}
	sort.SliceStable(ins, func(i, j int) bool {
		a, b := ins[i], ins[j]
		if sa, sb := specificity(a), specificity(b); sa != sb {
			return sa > sb
		}
		if a.SourceName() != b.SourceName() {
			return a.SourceName() < b.SourceName()
		}
		return a.Destination < b.Destination
	})
}

// checkSourceNamespace reports a source whose namespace cannot be the
// namespace of the declared service s it names: "ns/svc" where svc runs
// elsewhere, or a bare "svc" to a destination in another namespace (a bare
// source names a caller in the destination's namespace).
func checkSourceNamespace(in *intention, s *service, declared map[string]*service) hcl.Diagnostics {
	if in.SourceNamespace != "" {
		if in.SourceNamespace != s.Namespace {
			return hcl.Diagnostics{errorAt(in.SourceRange, "Intention source in another namespace",
				fmt.Sprintf("The source %q names service %q in namespace %q, but its service block puts it in %q. Write %q.",
					in.Source, s.Name, in.SourceNamespace, s.Namespace, s.Namespace+"/"+s.Name))}
		}
		return nil
	}
	dst, ok := declared[in.Destination]
	if !ok || dst.Namespace == s.Namespace {
		return nil
	}
	return hcl.Diagnostics{errorAt(in.SourceRange, "Intention source in another namespace",
		fmt.Sprintf("A source without a namespace names a caller in the destination's namespace (%q for %q), but service %q runs in %q, "+
			"so this intention would match nothing. Write %q.", dst.Namespace, dst.Name, s.Name, s.Namespace, s.Namespace+"/"+s.Name))}
}

// canonicalSource is the source with its namespace resolved, so that
// "frontend" and "default/frontend" to the same destination count as the
// same intention.
func (in *intention) canonicalSource(declared map[string]*service) string {
	if in.SourceNamespace != "" || in.SourceService == policy.Wildcard {
		return in.SourceNamespace + "/" + in.SourceService
	}
	if dst, ok := declared[in.Destination]; ok {
		return dst.Namespace + "/" + in.SourceService
	}
	return "?/" + in.SourceService
}
