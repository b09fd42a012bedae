package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// subset is a decoded subset block inside a service block:
//
//	subset "v2" {
//	  meta = { version = "v2" }
//	  tags = ["canary"]
//	}
type subset struct {
	Name      string
	NameRange hcl.Range
	Meta      map[string]string
	Tags      []string

	DeclRange hcl.Range
}

var subsetSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "meta"}, {Name: "tags"}},
}

func decodeSubsetBlock(block *hcl.Block) (*subset, hcl.Diagnostics) {
	s := &subset{Name: block.Labels[0], NameRange: block.LabelRanges[0], DeclRange: block.DefRange}
	var diags hcl.Diagnostics
	if !model.ValidName(s.Name) {
		diags = append(diags, errorAt(s.NameRange, "Invalid subset name",
			fmt.Sprintf("The subset name %q is not a DNS label. Use lower-case letters, digits and dashes, such as \"v2\" or \"canary\".", s.Name)))
	}
	content, moreDiags := block.Body.Content(subsetSchema)
	diags = append(diags, moreDiags...)
	if attr, ok := content.Attributes["meta"]; ok {
		m, d := decodeStringMap(attr)
		diags = append(diags, d...)
		s.Meta = m
	}
	if attr, ok := content.Attributes["tags"]; ok {
		tags, d := decodeStringList(attr)
		diags = append(diags, d...)
		s.Tags = tags
	}
	if len(s.Meta) == 0 && len(s.Tags) == 0 && !diags.HasErrors() {
		diags = append(diags, errorAt(s.DeclRange, "Empty subset",
			fmt.Sprintf("The subset %q chooses no instances by meta or tags, so it would hold every instance. "+
				"Set meta (meta = { version = \"v2\" }) or tags, or route to the whole service by leaving the split out.", s.Name)))
	}
	return s, diags
}

func (s *subset) toPolicy() policy.Subset {
	return policy.Subset{Name: s.Name, Meta: s.Meta, Tags: s.Tags}
}
