package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// permission is a decoded permission block inside an intention block: an
// L7 rule. The destination's sidecar tries an intention's permissions in
// order for every request; the first whose match holds (a permission
// without match holds for every request) decides, and a request none
// matches gets the mesh's default action.
//
//	intention "web" "api" {
//	  permission {
//	    action = "allow"
//	    match { methods = ["GET", "HEAD"] }
//	  }
//	}
type permission struct {
	Action    policy.Action
	Match     *match
	JWT       *permissionJWT // intention.permission.jwt.go
	DeclRange hcl.Range
}

var permissionSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "action", Required: true}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "match"}, {Type: "jwt"}},
}

func decodePermissionBlock(block *hcl.Block) (*permission, hcl.Diagnostics) {
	p := &permission{DeclRange: block.DefRange}
	content, diags := block.Body.Content(permissionSchema)
	if attr, ok := content.Attributes["action"]; ok {
		a, set, d := decodeEnum(attr, actions, "Invalid action", "permission action")
		diags = append(diags, d...)
		if !set && !d.HasErrors() {
			diags = append(diags, missingArgument(attr))
		}
		p.Action = a
	}
	for _, b := range content.Blocks {
		if b.Type == "jwt" {
			j, d := decodePermissionJWTBlock(b)
			diags = append(diags, d...)
			if p.JWT != nil {
				diags = append(diags, errorAt(b.DefRange, "Duplicate jwt block",
					fmt.Sprintf("This permission already has a jwt block at %s. Name every claim in one block.", at(p.JWT.DeclRange))))
				continue
			}
			p.JWT = j
			continue
		}
		if p.Match != nil {
			diags = append(diags, errorAt(b.DefRange, "Duplicate match block",
				fmt.Sprintf("This permission already has a match block at %s. A permission has one match; write a second permission for other requests.", at(p.Match.DeclRange))))
			continue
		}
		m, d := decodeMatchBlock(b)
		diags = append(diags, d...)
		p.Match = m
	}
	return p, diags
}

func (p *permission) toPolicy() policy.Permission {
	pp := policy.Permission{Action: p.Action}
	if p.Match != nil {
		pp.Match = p.Match.Match
	}
	if p.JWT != nil {
		m := p.JWT.JWTMatch
		pp.JWT = &m
	}
	return pp
}
