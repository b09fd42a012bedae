package policyhcl

import (
	"github.com/hashicorp/hcl/v2"
)

// split is a decoded split block inside a route block: weight percent of
// the route's requests go to the named subset of the service.
//
//	split "v2" { weight = 10 }
type split struct {
	Subset      string
	SubsetRange hcl.Range
	Weight      int
	WeightSet   bool

	DeclRange hcl.Range
}

var splitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "weight", Required: true}},
}

func decodeSplitBlock(block *hcl.Block) (*split, hcl.Diagnostics) {
	s := &split{Subset: block.Labels[0], SubsetRange: block.LabelRanges[0], DeclRange: block.DefRange}
	content, diags := block.Body.Content(splitSchema)
	if attr, ok := content.Attributes["weight"]; ok {
		w, set, d := decodeInt(attr, 0, 100, "weight")
		diags = append(diags, d...)
		if !set && !d.HasErrors() {
			diags = append(diags, missingArgument(attr))
		}
		s.Weight, s.WeightSet = w, set
	}
	return s, diags
}
