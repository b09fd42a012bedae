package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// Defaults of the retry block.
const (
	DefaultRetryAttempts      = 2
	DefaultBudgetPercent      = 20
	DefaultBudgetMinPerSecond = 10
)

// DefaultRetryOn is what a retry block retries when it does not say.
var DefaultRetryOn = []string{policy.RetryConnect, policy.RetryReset, policy.RetryGatewayError, policy.RetryGRPCUnavailable}

// retry is a decoded retry block inside a route block:
//
//	retry {
//	  attempts        = 3          # tries in all, the first included; default 2
//	  per_try_timeout = "500ms"    # wait for response headers per try
//	  on              = ["5xx", "reset", "connect-failure", "unavailable"]
//	  budget {                     # counted in each caller's sidecar, per route
//	    percent        = 20        # retries add at most 20% to the requests of the last 10s
//	    min_per_second = 10        # and 10 retries a second in any case
//	  }
//	}
type retry struct {
	policy.Retry
	PerTryRange hcl.Range
	DeclRange   hcl.Range
}

var retrySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "attempts"}, {Name: "per_try_timeout"}, {Name: "on"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "budget"}},
}

var budgetSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "percent"}, {Name: "min_per_second"}},
}

func decodeRetryBlock(block *hcl.Block) (*retry, hcl.Diagnostics) {
	r := &retry{DeclRange: block.DefRange, Retry: policy.Retry{
		Attempts: DefaultRetryAttempts, RetryOn: DefaultRetryOn,
		BudgetPercent: DefaultBudgetPercent, BudgetMinPerSecond: DefaultBudgetMinPerSecond,
	}}
	content, diags := block.Body.Content(retrySchema)
	if attr, ok := content.Attributes["attempts"]; ok {
		n, set, d := decodeInt(attr, 1, 10, "attempts")
		diags = append(diags, d...)
		if set {
			r.Attempts = n
		}
	}
	if attr, ok := content.Attributes["per_try_timeout"]; ok {
		dur, set, d := decodeDuration(attr)
		diags = append(diags, d...)
		if set {
			r.PerTryTimeout, r.PerTryRange = dur, attr.Expr.Range()
		}
	}
	if attr, ok := content.Attributes["on"]; ok {
		list, d := decodeStringList(attr)
		diags = append(diags, d...)
		r.RetryOn = nil
		for _, c := range list {
			if !contains(policy.RetryConditions, c) {
				detail := fmt.Sprintf("%q is not a retry condition. Use %s.", c, quoteList(policy.RetryConditions, "or"))
				if sugg := suggest(c, policy.RetryConditions); sugg != "" {
					detail += fmt.Sprintf(" Did you mean %q?", sugg)
				}
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid retry condition", detail))
				continue
			}
			r.RetryOn = append(r.RetryOn, c)
		}
		if len(list) == 0 && !d.HasErrors() {
			diags = append(diags, errorAt(attr.Expr.Range(), "No retry conditions",
				"An empty list retries nothing. Name the failures to retry, such as [\"connect-failure\", \"gateway-error\"], or remove the retry block."))
		}
	}
	var budget *hcl.Block
	for _, b := range content.Blocks {
		if budget != nil {
			diags = append(diags, duplicateBlock("budget", "This retry block", budget.DefRange, b.DefRange))
			continue
		}
		budget = b
		bc, d := b.Body.Content(budgetSchema)
		diags = append(diags, d...)
		if attr, ok := bc.Attributes["percent"]; ok {
			n, set, d := decodeInt(attr, 0, 1000, "budget percent")
			diags = append(diags, d...)
			if set {
				r.BudgetPercent = n
			}
		}
		if attr, ok := bc.Attributes["min_per_second"]; ok {
			n, set, d := decodeInt(attr, 0, 100000, "budget minimum")
			diags = append(diags, d...)
			if set {
				r.BudgetMinPerSecond = n
			}
		}
	}
	return r, diags
}
