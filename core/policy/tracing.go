package policy

import (
	"fmt"
	"time"
)

// TracingProtocol is how spans reach the collector.
type TracingProtocol string

// The OTLP transports a sidecar can export with.
const (
	TracingGRPC TracingProtocol = "grpc" // OTLP over gRPC, port 4317
	TracingHTTP TracingProtocol = "http" // OTLP over HTTP with protobuf bodies, port 4318
)

// Tracing is the mesh block's tracing block: every sidecar starts or
// continues a span for each HTTP and gRPC hop it carries and exports the
// sampled ones to Endpoint. A nil *Tracing is off.
type Tracing struct {
	// Sampling is the fraction (0 to 1) of new traces recorded; a
	// caller's sampling decision is always honoured.
	Sampling float64
	Endpoint string // host:port of the OTLP collector
	Protocol TracingProtocol
	// ServiceName is the template of each sidecar's service.name:
	// "{service}" and "{namespace}" are replaced.
	ServiceName  string
	MaxBatch     int           // spans per export
	MaxQueue     int           // spans waiting for export; more are dropped and counted
	BatchTimeout time.Duration // the longest a finished span waits for its batch
}

// tracingDiff says what changes between two tracing blocks, as plan lines.
func tracingDiff(o, n *Tracing) []string {
	switch {
	case o == nil && n == nil:
		return nil
	case o == nil:
		return []string{fmt.Sprintf("tracing: off => on (sampling %g, %s to %s)", n.Sampling, n.Protocol, n.Endpoint)}
	case n == nil:
		return []string{"tracing: on => off"}
	}
	var out []string
	add := func(name string, a, b any) {
		if a != b {
			out = append(out, fmt.Sprintf("tracing.%s: %v => %v", name, a, b))
		}
	}
	add("sampling", o.Sampling, n.Sampling)
	add("endpoint", o.Endpoint, n.Endpoint)
	add("protocol", o.Protocol, n.Protocol)
	add("service_name", o.ServiceName, n.ServiceName)
	add("max_batch", o.MaxBatch, n.MaxBatch)
	add("max_queue", o.MaxQueue, n.MaxQueue)
	add("batch_timeout", o.BatchTimeout, n.BatchTimeout)
	return out
}
