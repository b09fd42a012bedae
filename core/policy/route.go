package policy

import "time"

// Subset is a named group of a service's instances, chosen by metadata and
// tags: an instance belongs when every Meta entry equals its own and it
// carries every tag.
type Subset struct {
	Name string
	Meta map[string]string
	Tags []string
}

// Contains reports whether an instance with meta and tags belongs to s.
func (s Subset) Contains(meta map[string]string, tags []string) bool {
	for k, v := range s.Meta {
		if got, ok := meta[k]; !ok || got != v {
			return false
		}
	}
	for _, want := range s.Tags {
		found := false
		for _, t := range tags {
			if t == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// MatchKind says how a StringMatch compares.
type MatchKind string

const (
	MatchExact   MatchKind = "exact"
	MatchPrefix  MatchKind = "prefix"
	MatchRegex   MatchKind = "regex" // RE2, anchored at both ends
	MatchPresent MatchKind = "present"
)

// StringMatch compares one value (a path, a header, a query parameter).
// The zero value matches anything.
type StringMatch struct {
	Kind  MatchKind `json:",omitempty"`
	Value string    `json:",omitempty"`
}

// KeyMatch matches a named header or query parameter. With Invert the match
// holds when the value does not match (or, for "present", is absent).
type KeyMatch struct {
	Name   string
	Match  StringMatch
	Invert bool `json:",omitempty"`
}

// Match is one set of conditions on a request; all must hold.
type Match struct {
	Path    StringMatch `json:",omitempty"`
	Methods []string    `json:",omitempty"`
	Headers []KeyMatch  `json:",omitempty"`
	Query   []KeyMatch  `json:",omitempty"`
}

// IsZero reports whether m has no condition (and so matches every request).
func (m Match) IsZero() bool {
	return m.Path == (StringMatch{}) && len(m.Methods) == 0 && len(m.Headers) == 0 && len(m.Query) == 0
}

// Split sends Weight parts of a route's requests to the instances of
// Subset ("" for every instance of the service).
type Split struct {
	Subset string
	Weight int
}

// Route says where a caller's requests to a service go and how they are
// handled. Routes belong to the destination service and apply in every
// caller's sidecar; the first whose matches hold takes the request.
type Route struct {
	Name            string
	Matches         []Match `json:",omitempty"` // any; none matches every request
	Splits          []Split `json:",omitempty"` // none: the whole service
	Retry           *Retry  `json:",omitempty"`
	Timeouts        Timeouts
	RequestHeaders  HeaderOps
	ResponseHeaders HeaderOps
	Fault           *Fault  `json:",omitempty"`
	Mirror          *Mirror `json:",omitempty"`
}

// Mirror copies Percent of a route's requests to another service, fire
// and forget: the caller gets the answer of the route's own destination
// and never waits on the copy, whose answer is dropped.
type Mirror struct {
	Service string
	Percent int
}

// Retry conditions (RetryOn values).
const (
	Retry5xx          = "5xx"             // any 5xx response
	RetryGatewayError = "gateway-error"   // 502, 503, 504
	RetryReset        = "reset"           // the connection broke before a response
	RetryConnect      = "connect-failure" // no connection to the endpoint
	// gRPC status codes, by their canonical lower-case names.
	RetryGRPCCancelled         = "cancelled"
	RetryGRPCDeadlineExceeded  = "deadline-exceeded"
	RetryGRPCInternal          = "internal"
	RetryGRPCResourceExhausted = "resource-exhausted"
	RetryGRPCUnavailable       = "unavailable"
)

// RetryConditions lists every RetryOn value.
var RetryConditions = []string{
	Retry5xx, RetryGatewayError, RetryReset, RetryConnect,
	RetryGRPCCancelled, RetryGRPCDeadlineExceeded, RetryGRPCInternal, RetryGRPCResourceExhausted, RetryGRPCUnavailable,
}

// Retry says when and how often a failed request is tried again.
type Retry struct {
	Attempts      int           // total tries, the first included
	PerTryTimeout time.Duration // 0: none; bounds the wait for response headers
	RetryOn       []string
	// The budget: retries may add at most BudgetPercent of the requests of
	// the last 10 seconds, plus BudgetMinPerSecond retries a second.
	BudgetPercent      int
	BudgetMinPerSecond int
}

// Timeouts bound an exchange. Zero means none (or, for Connect, the
// sidecar's default).
type Timeouts struct {
	Connect time.Duration `json:",omitempty"` // dialing and handshaking with an upstream sidecar
	Request time.Duration `json:",omitempty"` // the whole exchange, response body included
	Idle    time.Duration `json:",omitempty"` // a pooled connection without requests
	Stream  time.Duration `json:",omitempty"` // a request with no bytes either way
}

// HeaderOps change headers: Remove first, then Set (replacing), then Add
// (appending).
type HeaderOps struct {
	Add    map[string]string `json:",omitempty"`
	Set    map[string]string `json:",omitempty"`
	Remove []string          `json:",omitempty"`
}

// Empty reports whether h changes nothing.
func (h HeaderOps) Empty() bool { return len(h.Add) == 0 && len(h.Set) == 0 && len(h.Remove) == 0 }

// Permission is an L7 rule of an intention: requests that match get
// Action. The first matching permission decides; a request no permission
// matches gets the mesh's default action.
type Permission struct {
	Action Action
	Match  Match
	// JWT, when set, also needs a valid end-user token whose claims hold
	// (jwt.go).
	JWT *JWTMatch `json:",omitempty"`
}

// RateLimit is a token bucket on the inbound side of a service: requests
// that match (every request when Match is zero) from the given callers
// (every caller when empty) take a token; without one they are refused
// with 429 (gRPC RESOURCE_EXHAUSTED) and Retry-After. With PerCaller each
// calling service has its own bucket. Each instance counts on its own,
// unless Global: then RequestsPerSecond and Burst hold across every
// instance of the service, the controller dividing them among the
// instances' sidecars (core/budget); a global limit is never PerCaller.
type RateLimit struct {
	Name              string
	RequestsPerSecond float64
	Burst             int
	PerCaller         bool `json:",omitempty"`
	Global            bool `json:",omitempty"`
	// PerJWTSubject, a JWT provider's name, gives each end user (the sub
	// claim of the request's valid token of that provider) a bucket.
	PerJWTSubject string   `json:",omitempty"`
	Callers       []string `json:",omitempty"`
	Match         Match
	// PerSourceIP gives each client IP address its own bucket (with
	// PerCaller: each caller and address).
	PerSourceIP bool `json:",omitempty"`
}

// ConnectionLimit caps the connections an instance's sidecar accepts: in
// all and from one calling service. Zero means no cap.
type ConnectionLimit struct {
	Max          int
	MaxPerCaller int
}

// Fault is fault injection on a route, in the callers' sidecars: a share of
// requests waits Delay first, a share is answered AbortStatus without
// reaching the service (gRPC calls get the matching gRPC status). Callers,
// when set, limits it to those calling services.
type Fault struct {
	Delay        time.Duration `json:",omitempty"`
	DelayPercent int           `json:",omitempty"`
	AbortStatus  int           `json:",omitempty"`
	AbortPercent int           `json:",omitempty"`
	Callers      []string      `json:",omitempty"`
}

// CircuitBreaker caps what one caller's sidecar sends to a service at
// once; past a cap it answers 503 (gRPC UNAVAILABLE) at once instead of
// adding load. Zero means no cap.
type CircuitBreaker struct {
	MaxConnections int `json:",omitempty"` // TCP connections; HTTP/1.1: pooled connections
	MaxRequests    int `json:",omitempty"` // requests in flight
	MaxPending     int `json:",omitempty"` // requests waiting for one of MaxRequests or an HTTP/1.1 connection
	MaxRetries     int `json:",omitempty"` // retries in flight
}

// OutlierDetection takes failing instances out of a caller's balancing for
// a while: after Consecutive5xx 5xx answers, ConsecutiveGatewayErrors 502,
// 503 or 504 answers, or ConsecutiveLocalFailures connection failures in a
// row (0: not counted), for BaseEjectionTime times the number of its
// ejections, at most MaxEjectedPercent of the instances at once. Each
// whole Interval an instance spends in the set, not ejected, its count
// goes down by one. The caller's sidecar returns an instance when its
// ejection time ends, whether or not traffic flows.
type OutlierDetection struct {
	Consecutive5xx           int           `json:",omitempty"`
	ConsecutiveGatewayErrors int           `json:",omitempty"`
	ConsecutiveLocalFailures int           `json:",omitempty"`
	Interval                 time.Duration `json:",omitempty"`
	BaseEjectionTime         time.Duration `json:",omitempty"`
	MaxEjectedPercent        int           `json:",omitempty"`
	// SuccessRate, when set, also ejects by success rate every Interval
	// (outlier.go).
	SuccessRate *OutlierSuccessRate `json:",omitempty"`
}
