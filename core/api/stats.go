package api

import "time"

// The golden signals the controller collects from the sidecars' reports
// (issue 14). GET /v1/stats answers a StatsReport; `weft stat`, the
// dashboard and the tests decode it. Fields may be added; none is renamed.
//
// Where a figure is measured: a service's and an edge's figures come from
// the callee's sidecars (inbound: the caller is the one its certificate
// names, so a caller cannot lie about itself); route and subset figures
// come from the caller's sidecars (outbound: routes and subsets are the
// caller's), as do the edges to callers outside the mesh's view. Latency
// percentiles are estimated from histograms with fixed bounds
// (LatencyBoundsMs), so they are exact to within one bucket.

// StatsReport is what GET /v1/stats returns: every figure over the last
// WindowSeconds (query ?window=1m; the default is 1 minute, the longest
// is what the controller keeps, 10 minutes).
type StatsReport struct {
	Generated     time.Time `json:"generated"`
	WindowSeconds float64   `json:"window_seconds"`
	// ReportingSidecars counts the sidecars whose reports are in the window.
	ReportingSidecars int `json:"reporting_sidecars"`
	// LatencyBoundsMs are the upper bounds of the latency histograms'
	// buckets, in milliseconds (the last bucket has no upper bound).
	LatencyBoundsMs []float64       `json:"latency_bounds_ms"`
	Services        []ServiceStats  `json:"services"`
	Edges           []EdgeStats     `json:"edges"`
	Instances       []InstanceStats `json:"instances"`
	// RecentDenials are the last requests and connections refused by
	// authorization (at most 100, newest first).
	RecentDenials []Denial `json:"recent_denials"`
}

// Golden are the golden signals of one subject over the window.
type Golden struct {
	// Requests counts HTTP requests and gRPC calls; Successes those that
	// did not fail (HTTP status below 500 and not refused by the mesh,
	// gRPC status OK or a client error).
	Requests    uint64  `json:"requests"`
	Successes   uint64  `json:"successes"`
	RPS         float64 `json:"rps"`
	SuccessRate float64 `json:"success_rate"` // Successes/Requests; 0 when Requests is 0
	// Latency percentiles in milliseconds; 0 when Requests is 0.
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
	// LatencyBuckets counts requests per bucket of LatencyBoundsMs (one
	// more than the bounds: the last counts what exceeded them).
	LatencyBuckets []uint64 `json:"latency_buckets,omitempty"`
	BytesIn        uint64   `json:"bytes_in"`
	BytesOut       uint64   `json:"bytes_out"`
	// Connections opened in the window; ActiveConnections open at the
	// newest report.
	Connections       uint64 `json:"connections"`
	ActiveConnections int64  `json:"active_connections"`
	// Denied counts requests and connections refused by authorization.
	Denied uint64 `json:"denied"`
}

// Point is one step of a time series: the figures of one report interval.
type Point struct {
	Time        time.Time `json:"t"`
	RPS         float64   `json:"rps"`
	SuccessRate float64   `json:"success_rate"`
	P99Ms       float64   `json:"p99_ms"`
}

// ServiceStats is one service's inbound traffic, all its instances together.
type ServiceStats struct {
	Service   string  `json:"service"`
	Namespace string  `json:"namespace,omitempty"`
	Golden    Golden  `json:"golden"`
	Series    []Point `json:"series,omitempty"`
	Instances int     `json:"instances"` // instances that reported
}

// EdgeStats is the traffic from one calling service to one called service.
type EdgeStats struct {
	Caller          string       `json:"caller"`
	CallerNamespace string       `json:"caller_namespace,omitempty"`
	Callee          string       `json:"callee"`
	CalleeNamespace string       `json:"callee_namespace,omitempty"`
	Golden          Golden       `json:"golden"`
	Series          []Point      `json:"series,omitempty"`
	Routes          []RouteStats `json:"routes,omitempty"`
}

// RouteStats is the caller's view of one route and subset of an edge
// (Route "" is traffic that matched no named route; Subset "" no subset).
type RouteStats struct {
	Route  string `json:"route"`
	Subset string `json:"subset"`
	Golden Golden `json:"golden"`
}

// InstanceStats is one instance's inbound traffic, as its sidecar reported.
type InstanceStats struct {
	Instance string `json:"instance"`
	Service  string `json:"service"`
	Golden   Golden `json:"golden"`
	// LastReport is when its sidecar's newest report arrived.
	LastReport time.Time `json:"last_report"`
}

// Denial is one request or connection refused by authorization.
type Denial struct {
	Time   time.Time `json:"time"`
	Caller string    `json:"caller"` // the caller's SPIFFE ID, or "" when it had none
	Callee string    `json:"callee"` // the called service
	Method string    `json:"method,omitempty"`
	Path   string    `json:"path,omitempty"`
	// Reason says why, as the sidecar's access log does.
	Reason string `json:"reason"`
}
