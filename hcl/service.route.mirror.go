package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// mirror is a decoded mirror block inside a route block: the callers'
// sidecars copy a share of the route's requests to another service, fire
// and forget (the copy's Host gets a "-shadow" suffix; its answer is
// dropped). The callers need an intention to the mirror service.
//
//	mirror "api-next" {
//	  percent = 10 # default 100
//	}
type mirror struct {
	policy.Mirror
	ServiceRange hcl.Range
	DeclRange    hcl.Range
}

var mirrorSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "percent"}},
}

func decodeMirrorBlock(block *hcl.Block) (*mirror, hcl.Diagnostics) {
	m := &mirror{ServiceRange: block.LabelRanges[0], DeclRange: block.DefRange}
	m.Service, m.Percent = block.Labels[0], 100
	content, diags := block.Body.Content(mirrorSchema)
	if attr, ok := content.Attributes["percent"]; ok {
		n, set, d := decodeInt(attr, 1, 100, "percentage")
		diags = append(diags, d...)
		if set {
			m.Percent = n
		}
	}
	return m, diags
}

// checkMirrors reports mirrors to undeclared services, to the route's own
// service, or to a service that cannot take HTTP requests.
func checkMirrors(services []*service, declared map[string]*service, names []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range services {
		for _, r := range s.Routes {
			m := r.Mirror
			if m == nil {
				continue
			}
			dst, ok := declared[m.Service]
			switch {
			case !ok:
				diags = append(diags, errorAt(m.ServiceRange, "Unknown mirror service",
					fmt.Sprintf("Route %q of service %q mirrors to %q, but no service %q is declared. ", r.Name, s.Name, m.Service, m.Service)+declaredHint(m.Service, names)))
			case m.Service == s.Name:
				diags = append(diags, errorAt(m.ServiceRange, "Mirror to itself",
					fmt.Sprintf("Route %q of service %q mirrors to %q itself, which would send every copied request twice to the same instances. Mirror to another service, such as a new version deployed as its own service.", r.Name, s.Name, s.Name)))
			case dst.Protocol == policy.TCP:
				diags = append(diags, errorAt(m.ServiceRange, "Mirror to a TCP service",
					fmt.Sprintf("Service %q speaks \"tcp\" and cannot take copies of HTTP requests. Set its protocol to %q like service %q.", m.Service, s.Protocol, s.Name)))
			}
		}
	}
	return diags
}
