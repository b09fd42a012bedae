package policyhcl

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// Defaults of the outlier_detection block.
const (
	DefaultOutlierInterval          = 10 * time.Second
	DefaultBaseEjectionTime         = 30 * time.Second
	DefaultMaxEjectedPercent        = 50
	DefaultConsecutiveGatewayErrors = 5
)

// outlierDetection is a decoded outlier_detection block inside a service
// block: every caller's sidecar takes failing instances of the service out
// of its balancing for a while.
//
//	outlier_detection {
//	  consecutive_5xx            = 5     # 5xx answers in a row
//	  consecutive_gateway_errors = 5     # 502/503/504 in a row (the default check)
//	  consecutive_local_failures = 3     # failed connections in a row
//	  interval                   = "10s" # an ejection count decays by one per interval
//	  base_ejection_time         = "30s" # times the number of ejections
//	  max_ejected_percent        = 50    # of the instances, at most, at once
//	}
type outlierDetection struct {
	policy.OutlierDetection
	DeclRange hcl.Range
}

var outlierDetectionSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "consecutive_5xx"}, {Name: "consecutive_gateway_errors"}, {Name: "consecutive_local_failures"},
		{Name: "interval"}, {Name: "base_ejection_time"}, {Name: "max_ejected_percent"},
	},
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
	if counts == 0 {
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
