package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// fault is a decoded fault block inside a route block: fault injection in
// the callers' sidecars, for chaos testing.
//
//	fault {
//	  delay         = "200ms" # wait this long first...
//	  delay_percent = 10      # ...in 10% of requests
//	  abort_status  = 503     # answer 503 without calling the service...
//	  abort_percent = 5       # ...in 5% of requests (gRPC: the matching status)
//	  callers       = ["web"] # only for these callers; default every caller
//	}
type fault struct {
	policy.Fault
	CallersRange hcl.Range
	DeclRange    hcl.Range
}

var faultSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "delay"}, {Name: "delay_percent"}, {Name: "abort_status"}, {Name: "abort_percent"}, {Name: "callers"},
	},
}

func decodeFaultBlock(block *hcl.Block) (*fault, hcl.Diagnostics) {
	f := &fault{DeclRange: block.DefRange}
	content, diags := block.Body.Content(faultSchema)
	var delayAttr, abortAttr *hcl.Attribute
	if attr, ok := content.Attributes["delay"]; ok {
		d, _, dd := decodeDuration(attr)
		diags = append(diags, dd...)
		f.Delay, delayAttr = d, attr
	}
	if attr, ok := content.Attributes["delay_percent"]; ok {
		n, _, d := decodeInt(attr, 0, 100, "percentage")
		diags = append(diags, d...)
		f.DelayPercent = n
		if delayAttr == nil && !d.HasErrors() {
			diags = append(diags, errorAt(attr.Range, "Delay percentage without delay",
				"delay_percent says how many requests wait, but no delay says how long. Add delay = \"100ms\" (for example)."))
		}
	} else if delayAttr != nil && !diags.HasErrors() {
		diags = append(diags, errorAt(delayAttr.Range, "Delay without percentage",
			"Say which share of requests waits: add delay_percent (100 for every request)."))
	}
	if attr, ok := content.Attributes["abort_status"]; ok {
		n, _, d := decodeInt(attr, 400, 599, "abort status")
		diags = append(diags, d...)
		f.AbortStatus, abortAttr = n, attr
	}
	if attr, ok := content.Attributes["abort_percent"]; ok {
		n, _, d := decodeInt(attr, 0, 100, "percentage")
		diags = append(diags, d...)
		f.AbortPercent = n
		if abortAttr == nil && !d.HasErrors() {
			diags = append(diags, errorAt(attr.Range, "Abort percentage without status",
				"abort_percent says how many requests fail, but no abort_status says how. Add abort_status = 503 (for example)."))
		}
	} else if abortAttr != nil && !diags.HasErrors() {
		diags = append(diags, errorAt(abortAttr.Range, "Abort without percentage",
			"Say which share of requests fails: add abort_percent (100 for every request)."))
	}
	if attr, ok := content.Attributes["callers"]; ok {
		list, d := decodeStringList(attr)
		diags = append(diags, d...)
		f.Callers, f.CallersRange = list, attr.Expr.Range()
	}
	if delayAttr == nil && abortAttr == nil && !diags.HasErrors() {
		diags = append(diags, errorAt(f.DeclRange, "Empty fault",
			"This fault injects nothing. Set delay and delay_percent, abort_status and abort_percent, or remove the block."))
	}
	return f, diags
}

// checkFaultCallers reports faults naming undeclared callers.
func checkFaultCallers(services []*service, declared map[string]*service, names []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range services {
		for _, r := range s.Routes {
			if r.Fault == nil {
				continue
			}
			for _, c := range r.Fault.Callers {
				if _, ok := declared[c]; !ok {
					diags = append(diags, errorAt(r.Fault.CallersRange, "Unknown caller",
						fmt.Sprintf("The fault of route %q of service %q names the caller %q, but no service %q is declared. ", r.Name, s.Name, c, c)+declaredHint(c, names)))
				}
			}
		}
	}
	return diags
}
