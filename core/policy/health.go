package policy

import "time"

// HealthCheckKind is what a health check does.
type HealthCheckKind string

// Health check kinds.
const (
	HealthHTTP HealthCheckKind = "http" // GET a path, expect a status
	HealthGRPC HealthCheckKind = "grpc" // grpc.health.v1.Health/Check, expect SERVING
	HealthTCP  HealthCheckKind = "tcp"  // connect
)

// HealthCheck is how every sidecar of a service checks its own
// application: one probe every Interval, bounded by Timeout, against the
// app's port. UnhealthyThreshold failed probes in a row take the instance
// out (the sidecar answers new requests with the retryable signal at
// once and reports it to the controller, which removes it from every
// caller's endpoints); HealthyThreshold passing ones in a row bring it
// back.
type HealthCheck struct {
	Kind         HealthCheckKind
	HTTPPath     string `json:",omitempty"` // HealthHTTP: path and optional query
	ExpectStatus int    `json:",omitempty"` // HealthHTTP: 0 is any 2xx
	GRPCService  string `json:",omitempty"` // HealthGRPC: "" is the whole server

	Interval           time.Duration
	Timeout            time.Duration
	UnhealthyThreshold int
	HealthyThreshold   int
}
