package policyhcl

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// timeouts is a decoded timeouts block, in a service block (every
// attribute) or in a route block (request and stream only):
//
//	timeouts {
//	  connect = "2s"  # dialing an instance's sidecar
//	  request = "10s" # the whole exchange, response body included
//	  idle    = "5m"  # a pooled connection with no request
//	  stream  = "1m"  # a request with no bytes either way
//	}
type timeouts struct {
	policy.Timeouts
	RequestRange hcl.Range
	DeclRange    hcl.Range
}

var serviceTimeoutsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "connect"}, {Name: "request"}, {Name: "idle"}, {Name: "stream"}},
}

var routeTimeoutsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "request"}, {Name: "stream"}},
}

func decodeTimeoutsBlock(block *hcl.Block, schema *hcl.BodySchema) (*timeouts, hcl.Diagnostics) {
	t := &timeouts{DeclRange: block.DefRange}
	content, diags := block.Body.Content(schema)
	for name, dst := range map[string]*time.Duration{
		"connect": &t.Connect, "request": &t.Request, "idle": &t.Idle, "stream": &t.Stream,
	} {
		attr, ok := content.Attributes[name]
		if !ok {
			continue
		}
		d, set, valDiags := decodeDuration(attr)
		diags = append(diags, valDiags...)
		if set {
			*dst = d
			if name == "request" {
				t.RequestRange = attr.Expr.Range()
			}
		}
	}
	return t, diags
}

// duplicateBlock reports a second block of a kind that may appear once.
func duplicateBlock(kind, where string, prev, this hcl.Range) *hcl.Diagnostic {
	return errorAt(this, "Duplicate "+kind+" block",
		fmt.Sprintf("%s already has a %s block at %s. Merge the two into one.", where, kind, at(prev)))
}
