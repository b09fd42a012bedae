package compile

import (
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
)

// outlierSuccessRate is outlier detection's success-rate mode for the
// sidecar, or nil when the policy has none.
func outlierSuccessRate(sr *policy.OutlierSuccessRate) *meshapi.OutlierSuccessRate {
	if sr == nil {
		return nil
	}
	return &meshapi.OutlierSuccessRate{
		MinimumHosts:     uint32(sr.MinimumHosts),
		RequestVolume:    uint32(sr.RequestVolume),
		StdevFactorMilli: uint32(sr.StdevFactorMilli),
	}
}
