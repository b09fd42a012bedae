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
	Hash           *policy.Hash
	HashRange      hcl.Range

	DeclRange hcl.Range
}

var upstreamSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "local_port", Required: true},
		{Name: "lb"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "hash"}},
}

var lbs = []policy.LB{policy.RoundRobin, policy.LeastRequest, policy.Random, policy.RingHash, policy.Maglev}

var hashSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "header"}, {Name: "cookie"}, {Name: "source_identity"}},
}

// decodeHashBlock decodes the hash block of an upstream: what consistent
// hashing (lb = "ring_hash" or "maglev") hashes, exactly one of
//
//	hash { header = "x-user" }          # a request header
//	hash { cookie = "session" }         # a cookie
//	hash { source_identity = true }     # the calling instance
func decodeHashBlock(block *hcl.Block) (*policy.Hash, hcl.Diagnostics) {
	h := &policy.Hash{}
	content, diags := block.Body.Content(hashSchema)
	n := 0
	if attr, ok := content.Attributes["header"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set && (s == "" || strings.ContainsAny(s, " :")) {
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid header name", fmt.Sprintf("%q is not an HTTP header name. Give a name such as \"x-user\".", s)))
		}
		h.Header = strings.ToLower(s)
		n++
	}
	if attr, ok := content.Attributes["cookie"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set && s == "" {
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid cookie name", "Give the name of the cookie to hash, such as \"session\"."))
		}
		h.Cookie = s
		n++
	}
	if attr, ok := content.Attributes["source_identity"]; ok {
		b, set, d := decodeBool(attr)
		diags = append(diags, d...)
		if set && !b {
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid hash", "source_identity = false hashes nothing. Write source_identity = true, or hash a header or cookie."))
		}
		h.SourceIdentity = b
		n++
	}
	if n != 1 && !diags.HasErrors() {
		diags = append(diags, errorAt(block.DefRange, "Hash needs one key",
			"Consistent hashing hashes one thing: give exactly one of header, cookie and source_identity = true."))
	}
	return h, diags
}

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
	for i, b := range content.Blocks {
		if i > 0 {
			diags = append(diags, errorAt(b.DefRange, "Duplicate hash block", "An upstream hashes one thing; remove one of the hash blocks."))
			continue
		}
		h, d := decodeHashBlock(b)
		diags = append(diags, d...)
		u.Hash, u.HashRange = h, b.DefRange
	}
	hashing := u.LB == policy.RingHash || u.LB == policy.Maglev
	switch {
	case hashing && u.Hash == nil:
		diags = append(diags, errorAt(u.LBRange, "Missing hash block",
			fmt.Sprintf("The load balancer %q keeps a key on one instance; add a hash block saying what the key is, such as hash { header = \"x-user\" }.", u.LB)))
	case !hashing && u.Hash != nil:
		diags = append(diags, errorAt(u.HashRange, "Hash without consistent hashing",
			fmt.Sprintf("A hash block only means something with lb = \"ring_hash\" or \"maglev\", but this upstream uses %q. Set lb, or remove the hash block.", u.LB)))
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
			"that no other process on the instance listens on.", numberText(bf)),
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
			if dst, ok := declared[u.Service]; ok {
				if u.Hash != nil && (u.Hash.Header != "" || u.Hash.Cookie != "") && dst.Protocol == policy.TCP {
					diags = append(diags, errorAt(u.HashRange, "Request hash on a TCP upstream",
						fmt.Sprintf("Service %q speaks \"tcp\", so there are no headers or cookies to hash. Hash on source_identity = true, or set an HTTP protocol on %q.", u.Service, u.Service)))
				}
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
	return policy.Upstream{Service: u.Service, LocalPort: u.LocalPort, LB: u.LB, Hash: u.Hash}
}
