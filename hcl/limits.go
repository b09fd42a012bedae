package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/hcl/hcllimit"
)

// The limits of a policy, checked before anything is parsed. The package
// doc says why they are what they are.
const (
	// MaxFileBytes is the largest policy file Load reads.
	MaxFileBytes = 1 << 20
	// MaxTotalBytes is the most Load reads across all the files of a
	// policy.
	MaxTotalBytes = 4 << 20
	// MaxFiles is the most policy files Load reads.
	MaxFiles = 1000
	// MaxDepth is the deepest nesting of a policy file, as hcllimit.Depth
	// counts it.
	MaxDepth = 64
)

var fileLimits = hcllimit.Limits{Kind: "policy file", Bytes: MaxFileBytes, Depth: MaxDepth}

func tooManyFiles(n int, paths []string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Too many policy files",
		Detail: fmt.Sprintf("%v hold %d policy files; at most %d are read. Merge small files into larger ones, "+
			"or check that the path is the policy directory you meant.", paths, n, MaxFiles),
	}
}

func tooMuchPolicy(name string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Policy too large",
		Detail: fmt.Sprintf("Reading %s takes the policy past %s in all, the limit for one policy, so it was not read. "+
			"No mesh needs that much policy: check for generated or copied files that do not belong in the policy directory.",
			name, inputlimit.Bytes(MaxTotalBytes)),
	}
}
