package policyhcl

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// intention is a decoded intention block.
type intention struct {
	Source           string
	SourceRange      hcl.Range
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
	content, diags := block.Body.Content(intentionSchema)
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
		for _, end := range []struct {
			role, name string
			rng        hcl.Range
		}{
			{"source", in.Source, in.SourceRange},
			{"destination", in.Destination, in.DestinationRange},
		} {
			if end.name == policy.Wildcard {
				continue
			}
			if _, ok := declared[end.name]; ok {
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

		k := pair{in.Source, in.Destination}
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
	pi := policy.Intention{Source: in.Source, Destination: in.Destination, Action: in.Action}
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
		if in.Source != policy.Wildcard {
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
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Destination < b.Destination
	})
}
