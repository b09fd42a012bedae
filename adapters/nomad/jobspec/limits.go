package jobspec

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/hcl/hcllimit"
)

// The limits of a job file, checked before it is parsed. Job files can
// carry templates and embedded configuration, so the size limit is larger
// than a policy file's; a job nests a handful of blocks deep (job, group,
// task, template), so 64 levels leave room for any expression.
const (
	MaxJobFileBytes = 4 << 20
	MaxJobFileDepth = 64
)

var jobLimits = hcllimit.Limits{Kind: "job file", Bytes: MaxJobFileBytes, Depth: MaxJobFileDepth}

// ReadFile reads a job file for Render within MaxJobFileBytes (never
// reading more than one byte past it) and checks its nesting. The
// diagnostics name the file, the limit and, for nesting, the line.
func ReadFile(path string) ([]byte, hcl.Diagnostics) {
	return hcllimit.ReadFile(path, jobLimits)
}
