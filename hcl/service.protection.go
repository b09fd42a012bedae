package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// decodeServiceProtectionBlock decodes a protection block inside a
// service block: the defences of the service's inbound listener, each
// attribute over the mesh's protection block (mesh.protection.go has the
// schema; the blocking block there too). A service facing heavier or
// lighter traffic than the rest tunes its own:
//
//	service "search" {
//	  protocol = "http"
//	  protection {
//	    max_in_flight          = 512
//	    max_request_body_bytes = 1048576
//	  }
//	}
func decodeServiceProtectionBlock(s *service, block *hcl.Block) hcl.Diagnostics {
	p, diags := decodeProtectionBlock(block, fmt.Sprintf("Service %q", s.Name))
	if s.Protection != nil {
		return append(diags, duplicateBlock("protection", fmt.Sprintf("Service %q", s.Name), s.Protection.DeclRange, block.DefRange))
	}
	s.Protection = p
	return diags
}
