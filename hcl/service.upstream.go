package policyhcl

import (
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
	"github.com/zclconf/go-cty/cty"
)

// Defaults of the upstream block.
const (
	DefaultLB = policy.RoundRobin
)

// upstream is a decoded upstream block inside a service block.
type upstream struct {
	Service        string
	ServiceRange   hcl.Range
	LocalPort      int // 0 when missing or invalid
	LocalPortRange hcl.Range
	LB             policy.LB
	LBRange        hcl.Range // zero when defaulted

	DeclRange hcl.Range
}

var upstreamSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "local_port", Required: true},
		{Name: "lb"},
	},
}

var lbs = []policy.LB{policy.RoundRobin, policy.LeastRequest}

func decodeUpstreamBlock(block *hcl.Block) (*upstream, hcl.Diagnostics) {
	u := &upstream{
		Service:      block.Labels[0],
		ServiceRange: block.LabelRanges[0],
		LB:           DefaultLB,
		DeclRange:    block.DefRange,
	}
	content, diags := block.Body.Content(upstreamSchema)

	if attr, ok := content.Attributes["local_port"]; ok {
		port, portDiags := decodePort(attr)
		diags = append(diags, portDiags...)
		u.LocalPort = port
		u.LocalPortRange = attr.Expr.Range()
	}

	if attr, ok := content.Attributes["lb"]; ok {
		lb, set, valDiags := decodeEnum(attr, lbs, "Invalid load balancer", "load-balancing algorithm")
		diags = append(diags, valDiags...)
		if set {
			u.LB = lb
			u.LBRange = attr.Expr.Range()
		}
	}
	return u, diags
}

// decodePort decodes a required port number; it returns 0 with diagnostics
// when the value is missing or out of range.
func decodePort(attr *hcl.Attribute) (int, hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.Number)
	if diags.HasErrors() {
		return 0, diags
	}
	if val.IsNull() {
		return 0, append(diags, missingArgument(attr))
	}
	bf := val.AsBigFloat()
	if bf.IsInt() && bf.Cmp(big.NewFloat(1)) >= 0 && bf.Cmp(big.NewFloat(65535)) <= 0 {
		n, _ := bf.Int64()
		return int(n), diags
	}
	rng := attr.Expr.Range()
	return 0, append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid local port",
		Detail: fmt.Sprintf("The local port %s is not a TCP port. Use a whole number from 1 to 65535 "+
			"that no other process on the instance listens on.", bf.Text('g', -1)),
		Subject: &rng,
		Context: attr.Range.Ptr(),
	})
}

// checkUpstreamServices reports upstreams that name no declared service.
func checkUpstreamServices(services []*service, declared map[string]*service) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names := make([]string, 0, len(declared))
	for n := range declared {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, s := range services {
		for _, u := range s.Upstreams {
			if _, ok := declared[u.Service]; ok {
				continue
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown upstream service",
				Detail:   fmt.Sprintf("Service %q has an upstream %q, but no service %q is declared. ", s.Name, u.Service, u.Service) + declaredHint(u.Service, names),
				Subject:  u.ServiceRange.Ptr(),
				Context:  u.DeclRange.Ptr(),
			})
		}
	}
	return diags
}

// maxListed is how many declared services a detail lists at most.
const maxListed = 10

// declaredHint tells the user which services exist and what to do about a
// reference to an unknown one.
func declaredHint(name string, declared []string) string {
	var hint string
	switch n := len(declared); {
	case n == 0:
		hint = "No services are declared at all."
	case n == 1:
		hint = fmt.Sprintf("The only declared service is %s.", quoteList(declared, "and"))
	case n <= maxListed:
		hint = fmt.Sprintf("The declared services are %s.", quoteList(declared, "and"))
	default:
		hint = fmt.Sprintf("The declared services include %s and %d more.",
			strings.Join(quoted(declared[:maxListed]), ", "), n-maxListed)
	}
	if sugg := suggest(name, declared); sugg != "" {
		hint += fmt.Sprintf(" Did you mean %q?", sugg)
	}
	return hint + fmt.Sprintf(" A service must be declared with a service block (service %q { ... }) before anything can refer to it.", name)
}

func (u *upstream) toPolicy() policy.Upstream {
	return policy.Upstream{Service: u.Service, LocalPort: u.LocalPort, LB: u.LB}
}
