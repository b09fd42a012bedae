package compile

import (
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
)

// healthCheck is a service's health check as its own sidecars run it
// (core/proxy/health); nil for none.
func healthCheck(hc *policy.HealthCheck) *meshapi.HealthCheck {
	if hc == nil {
		return nil
	}
	out := &meshapi.HealthCheck{
		Interval:           duration(hc.Interval),
		Timeout:            duration(hc.Timeout),
		UnhealthyThreshold: uint32(max(hc.UnhealthyThreshold, 0)),
		HealthyThreshold:   uint32(max(hc.HealthyThreshold, 0)),
	}
	switch hc.Kind {
	case policy.HealthHTTP:
		out.Kind, out.HttpPath, out.ExpectStatus = meshapi.HealthCheckKind_HEALTH_CHECK_HTTP, hc.HTTPPath, uint32(max(hc.ExpectStatus, 0))
	case policy.HealthGRPC:
		out.Kind, out.GrpcService = meshapi.HealthCheckKind_HEALTH_CHECK_GRPC, hc.GRPCService
	case policy.HealthTCP:
		out.Kind = meshapi.HealthCheckKind_HEALTH_CHECK_TCP
	default:
		return nil
	}
	return out
}
