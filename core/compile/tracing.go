package compile

import (
	"strings"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
)

// tracing is the mesh's tracing block as one instance's sidecar applies
// it: the service name template filled in with the instance's own.
func tracing(t *policy.Tracing, service, namespace string) *meshapi.Tracing {
	if t == nil {
		return nil
	}
	proto := meshapi.TracingProtocol_TRACING_PROTOCOL_GRPC
	if t.Protocol == policy.TracingHTTP {
		proto = meshapi.TracingProtocol_TRACING_PROTOCOL_HTTP
	}
	return &meshapi.Tracing{
		Endpoint:     t.Endpoint,
		Protocol:     proto,
		Sampling:     t.Sampling,
		ServiceName:  strings.NewReplacer("{service}", service, "{namespace}", namespace).Replace(t.ServiceName),
		MaxBatch:     uint32(t.MaxBatch),
		MaxQueue:     uint32(t.MaxQueue),
		BatchTimeout: duration(t.BatchTimeout),
	}
}
