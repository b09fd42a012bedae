package policyhcl

import (
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/weftmesh/weft/core/policy"
)

// Defaults of the outlier_detection block.
const (
	DefaultOutlierInterval          = 10 * time.Second
	DefaultBaseEjectionTime         = 30 * time.Second
	DefaultMaxEjectedPercent        = 50
	DefaultConsecutiveGatewayErrors = 5

	// The success_rate block's defaults (Envoy's, too).
	DefaultSuccessRateMinimumHosts  = 5
	DefaultSuccessRateRequestVolume = 100
	DefaultSuccessRateStdevMilli    = 1900 // 1.9
)

// outlierDetection is a decoded outlier_detection block inside a service
// block: every caller's sidecar takes failing instances of the service out
// of its balancing for a while.
//
//	outlier_detection {
//	  consecutive_5xx            = 5     # 5xx answers in a row
//	  consecutive_gateway_errors = 5     # 502/503/504 in a row (the default check)
//	  consecutive_local_failures = 3     # failed connections in a row
//	  interval                   = "10s" # the sweep; an ejection count decays by one per quiet interval
//	  base_ejection_time         = "30s" # times the number of ejections
//	  max_ejected_percent        = 50    # of the instances, at most, at once
//	  success_rate {                     # also eject by success rate, every interval:
//	    minimum_hosts  = 5               #   only when this many instances qualify (2-1000)
//	    request_volume = 100             #   an instance qualifies with this many tries in the interval
//	    stdev_factor   = 1.9             #   eject below mean - 1.9 x standard deviation (0.001-10)
//	  }
//	}
//
// With neither a consecutive_* count nor a success_rate block, the block
// checks consecutive_gateway_errors = 5. A failure, for every check, is a
// 5xx answer or a failed connection (consecutive_gateway_errors counts
// only 502, 503 and 504; consecutive_local_failures only connections).
// stdev_factor is the multiplier itself, not Envoy's thousandths: Envoy's
// 1900 is 1.9 here. With n qualifying instances one outlier lies at most
// sqrt(n-1) standard deviations below the mean: with 3 instances only a
// factor below 1.41 can eject, and a warning says so when minimum_hosts
// instances never could.
type outlierDetection struct {
	policy.OutlierDetection
	DeclRange hcl.Range
}

var outlierDetectionSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "consecutive_5xx"}, {Name: "consecutive_gateway_errors"}, {Name: "consecutive_local_failures"},
		{Name: "interval"}, {Name: "base_ejection_time"}, {Name: "max_ejected_percent"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "success_rate"}},
}

var successRateSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "minimum_hosts"}, {Name: "request_volume"}, {Name: "stdev_factor"}},
}

func decodeOutlierDetectionBlock(block *hcl.Block) (*outlierDetection, hcl.Diagnostics) {
	od := &outlierDetection{DeclRange: block.DefRange, OutlierDetection: policy.OutlierDetection{
		Interval: DefaultOutlierInterval, BaseEjectionTime: DefaultBaseEjectionTime, MaxEjectedPercent: DefaultMaxEjectedPercent,
	}}
	content, diags := block.Body.Content(outlierDetectionSchema)
	counts := 0
	for name, dst := range map[string]*int{
		"consecutive_5xx": &od.Consecutive5xx, "consecutive_gateway_errors": &od.ConsecutiveGatewayErrors,
		"consecutive_local_failures": &od.ConsecutiveLocalFailures,
	} {
		if attr, ok := content.Attributes[name]; ok {
			n, _, d := decodeInt(attr, 1, 1000, "count")
			diags = append(diags, d...)
			*dst = n
			counts++
		}
	}
	var srRange hcl.Range
	for _, b := range content.Blocks {
		if od.SuccessRate != nil {
			diags = append(diags, duplicateBlock("success_rate", "This outlier_detection block", srRange, b.DefRange))
			continue
		}
		sr, d := decodeSuccessRateBlock(b)
		diags = append(diags, d...)
		od.SuccessRate, srRange = sr, b.DefRange
	}
	if counts == 0 && od.SuccessRate == nil {
		od.ConsecutiveGatewayErrors = DefaultConsecutiveGatewayErrors
	}
	for name, dst := range map[string]*time.Duration{"interval": &od.Interval, "base_ejection_time": &od.BaseEjectionTime} {
		if attr, ok := content.Attributes[name]; ok {
			d, set, dd := decodeDuration(attr)
			diags = append(diags, dd...)
			if set {
				*dst = d
			}
		}
	}
	if attr, ok := content.Attributes["max_ejected_percent"]; ok {
		n, set, d := decodeInt(attr, 1, 100, "percentage")
		diags = append(diags, d...)
		if set {
			od.MaxEjectedPercent = n
		}
	}
	return od, diags
}

// decodeSuccessRateBlock decodes outlier_detection's success_rate block.
func decodeSuccessRateBlock(block *hcl.Block) (*policy.OutlierSuccessRate, hcl.Diagnostics) {
	sr := &policy.OutlierSuccessRate{
		MinimumHosts:     DefaultSuccessRateMinimumHosts,
		RequestVolume:    DefaultSuccessRateRequestVolume,
		StdevFactorMilli: DefaultSuccessRateStdevMilli,
	}
	content, diags := block.Body.Content(successRateSchema)
	if attr, ok := content.Attributes["minimum_hosts"]; ok {
		// One instance is never below its own mean: at least 2.
		n, set, d := decodeInt(attr, 2, 1000, "count")
		diags = append(diags, d...)
		if set {
			sr.MinimumHosts = n
		}
	}
	if attr, ok := content.Attributes["request_volume"]; ok {
		n, set, d := decodeInt(attr, 1, 1_000_000, "count")
		diags = append(diags, d...)
		if set {
			sr.RequestVolume = n
		}
	}
	if attr, ok := content.Attributes["stdev_factor"]; ok {
		m, set, d := decodeStdevFactor(attr)
		diags = append(diags, d...)
		if set {
			sr.StdevFactorMilli = m
		}
	}
	// With n instances one outlier lies at most sqrt(n-1) standard
	// deviations below the mean: say so when minimum_hosts instances can
	// never eject anything.
	if !diags.HasErrors() {
		if f := float64(sr.StdevFactorMilli) / 1000; f >= math.Sqrt(float64(sr.MinimumHosts-1)) {
			need := int(math.Floor(f*f)) + 2 // the fewest n with sqrt(n-1) > f
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Success rate cannot eject with few instances",
				Detail: fmt.Sprintf("With %d qualifying instances one outlier lies at most %.2f standard deviations below the mean, so stdev_factor %g ejects nothing until %d instances qualify. Lower stdev_factor below %.2f or raise minimum_hosts to %d.",
					sr.MinimumHosts, math.Sqrt(float64(sr.MinimumHosts-1)), f, need, math.Sqrt(float64(sr.MinimumHosts-1)), need),
				Subject: block.DefRange.Ptr(),
			})
		}
	}
	return sr, diags
}

// decodeStdevFactor decodes stdev_factor, a number from 0.001 to 10 with
// at most three decimals, as thousandths.
func decodeStdevFactor(attr *hcl.Attribute) (milli int, set bool, diags hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.Number)
	if diags.HasErrors() || val.IsNull() {
		return 0, false, diags
	}
	bf := val.AsBigFloat()
	// A decimal such as 1.9 is not exact in binary: take the nearest
	// thousandth when the number is within a hair of it.
	m := new(big.Float).Mul(bf, big.NewFloat(1000))
	if !m.IsInf() && m.Sign() > 0 && m.Cmp(big.NewFloat(10_001)) < 0 {
		v, _ := new(big.Float).Add(m, big.NewFloat(0.5)).Int64()
		diff, _ := new(big.Float).Sub(m, big.NewFloat(float64(v))).Float64()
		if v >= 1 && v <= 10_000 && diff < 1e-6 && diff > -1e-6 {
			return int(v), true, diags
		}
	}
	detail := fmt.Sprintf("The stdev_factor %s is not a number from 0.001 to 10 with at most three decimals. Give the multiplier of the standard deviation, such as 1.9.", numberText(bf))
	if bf.Cmp(big.NewFloat(100)) >= 0 && bf.Cmp(big.NewFloat(10_000_000)) <= 0 {
		detail += " Envoy's success_rate_stdev_factor counts thousandths: its 1900 is 1.9 here."
	}
	rng := attr.Expr.Range()
	return 0, false, append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid standard deviation factor",
		Detail:   detail,
		Subject:  &rng,
		Context:  attr.Range.Ptr(),
	})
}
