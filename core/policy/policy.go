package policy

import (
	"strings"

	"github.com/weftmesh/weft/core/model"
)

// Action is what an intention (or the mesh default) does with a connection.
type Action string

const (
	Allow Action = "allow"
	Deny  Action = "deny"
)

// Protocol is the application protocol a service speaks.
type Protocol string

const (
	TCP   Protocol = "tcp"
	HTTP  Protocol = "http"  // HTTP/1.1 from the app and to the app
	HTTP2 Protocol = "http2" // HTTP/2 cleartext (h2c) from and to the app
	GRPC  Protocol = "grpc"  // gRPC: HTTP/2 with trailers, h2c to the app
)

// LB names a load-balancing algorithm.
type LB string

const (
	RoundRobin   LB = "round_robin"
	LeastRequest LB = "least_request" // power of two choices
	Random       LB = "random"
	RingHash     LB = "ring_hash" // consistent hashing on Upstream.Hash
	Maglev       LB = "maglev"    // consistent hashing on Upstream.Hash
)

// Hash says what consistent hashing hashes: one of a request header, a
// cookie, or the calling instance's identity.
type Hash struct {
	Header         string `json:",omitempty"`
	Cookie         string `json:",omitempty"`
	SourceIdentity bool   `json:",omitempty"`
}

// Wildcard matches every service in an intention's source or destination.
const Wildcard = "*"

// Policy is the whole compiled policy: the mesh block, every service and
// every intention, after validation.
type Policy struct {
	Mesh       Mesh
	Services   map[string]Service // by name
	Intentions []Intention        // most specific first (see Intention)
	// Declared says where each intention was written, "file:line", by
	// Intention.Key (`weft authz` names it). Plans do not compare it.
	Declared map[string]string `json:"-"`
	// JWTProviders are the end-user token issuers (jwt.go), by name.
	JWTProviders map[string]JWTProvider `json:",omitempty"`
	// Gateways are the ingress gateways, by name (gateway.go).
	Gateways map[string]Gateway `json:",omitempty"`
	// Index is the replicated log's index at which the policy was
	// applied (core/state), the same on every replica; 0 for a policy
	// read from files. Configuration versions begin with it
	// (core/meshserver), so that they compare across replicas. Plans do
	// not compare it.
	Index uint64 `json:"-"`
}

// Mesh holds mesh-wide settings.
type Mesh struct {
	TrustDomain   string
	DefaultAction Action
	// IdentityBinding says what happens to an instance whose workload no
	// binding of its service names (binding.go). "" is BindingStrict.
	IdentityBinding BindingMode `json:",omitempty"`
	// Tracing is the mesh's tracing (tracing.go); nil: off.
	Tracing *Tracing `json:",omitempty"`
	// Egress is the mesh's egress mode (external.go); "" is EgressAllow.
	Egress Egress `json:",omitempty"`
	// Protection is the defences of every sidecar's listeners
	// (protection.go); nil: the defaults.
	Protection *Protection `json:",omitempty"`
	// DefaultProxyMode is the proxy mode of every service that sets none
	// (proxymode.go); "": policy leaves it to the scheduler.
	DefaultProxyMode ProxyMode `json:",omitempty"`
}

// Service is what policy says about one service.
type Service struct {
	Name      string
	Namespace string
	Protocol  Protocol
	Upstreams []Upstream
	Subsets   []Subset `json:",omitempty"`
	Routes    []Route  `json:",omitempty"` // first match wins; none matches: the whole service
	Timeouts  Timeouts // defaults for every caller; a route's Request and Stream override

	CircuitBreaker   *CircuitBreaker   `json:",omitempty"`
	OutlierDetection *OutlierDetection `json:",omitempty"`

	RateLimits      []RateLimit     `json:",omitempty"`
	ConnectionLimit ConnectionLimit `json:",omitempty"`

	// Bindings name the scheduler workloads allowed to serve the service
	// (binding.go); an instance of any other workload gets no identity.
	Bindings []Binding `json:",omitempty"`

	// HealthCheck is the active check every sidecar of the service runs
	// against its own application (health.go); nil: none.
	HealthCheck *HealthCheck `json:",omitempty"`

	// External is set for an external service (external.go): a
	// destination outside the mesh, with no instances.
	External *External `json:",omitempty"`
	// JWT, when set, requires a valid end-user token on every HTTP
	// request (jwt.go).
	JWT *JWTRequirement `json:",omitempty"`
	// Protection is the defences of the service's inbound listener, over
	// the mesh's (protection.go); nil: the mesh's.
	Protection *Protection `json:",omitempty"`
	// ProxyMode is who may hold its instances' certificates
	// (proxymode.go); "": the mesh's DefaultProxyMode.
	ProxyMode ProxyMode `json:",omitempty"`
}

// Upstream is a service this one calls, reached by the app on a localhost port.
type Upstream struct {
	Service   string
	LocalPort int
	LB        LB
	Hash      *Hash `json:",omitempty"` // ring_hash and maglev only
}

// Intention allows or denies connections from Source to Destination. Either
// may be Wildcard. SourceNamespace says where the source runs: "" is the
// destination service's namespace, a name is that namespace, and Wildcard
// (only with a Wildcard Source) is any namespace of the trust domain. A
// Wildcard Source with a named SourceNamespace is every service of that
// namespace. The more specific source wins (a service over a namespace over
// everything), then the more specific destination; among equally specific
// intentions deny wins.
type Intention struct {
	Source          string
	SourceNamespace string `json:",omitempty"`
	Destination     string
	Action          Action       // "" when Permissions decide
	Permissions     []Permission `json:",omitempty"`
}

// SourceName is the intention's source as a policy author writes it:
// "svc", "ns/svc", "ns/*" or "*".
func (in *Intention) SourceName() string {
	if in.SourceNamespace == "" || (in.SourceNamespace == Wildcard && in.Source == Wildcard) {
		return in.Source
	}
	return in.SourceNamespace + "/" + in.Source
}

// Key names the intention uniquely in a policy: "source -> destination".
func (in *Intention) Key() string { return in.SourceName() + " -> " + in.Destination }

// Caller is a calling service and the namespace it runs in.
type Caller struct {
	Namespace string
	Service   string
}

// ParseCaller reads "ns/svc" as a caller in namespace ns, and a bare "svc"
// as a caller in namespace defaultNS.
func ParseCaller(s, defaultNS string) Caller {
	if ns, svc, ok := strings.Cut(s, "/"); ok {
		return Caller{Namespace: ns, Service: svc}
	}
	return Caller{Namespace: defaultNS, Service: s}
}

// Namespace returns the namespace of the named service: its service block's,
// else the default one.
func (p *Policy) Namespace(service string) string {
	if s, ok := p.Services[service]; ok && s.Namespace != "" {
		return s.Namespace
	}
	return model.DefaultNamespace
}

// Decide returns what the policy does with a connection from source to
// destination, and whether an intention (rather than the default) decided.
// source is "ns/svc", or a bare "svc": that service in the namespace its
// service block gives (see DecideCaller). An intention with permissions allows the
// connection when any of its permissions allows (each request is then
// decided by DecideRequest).
func (p *Policy) Decide(source, destination string) (Action, bool) {
	return p.DecideCaller(ParseCaller(source, p.Namespace(source)), destination)
}

// DecideCaller is Decide for a caller whose namespace is known (the
// sidecar's case: from the caller's SPIFFE ID).
func (p *Policy) DecideCaller(c Caller, destination string) (Action, bool) {
	in := p.WinnerFor(c, destination)
	if in == nil {
		return p.Mesh.DefaultAction, false
	}
	return in.connAction(), true
}

// Winner returns the intention that decides for source ("ns/svc", or a
// bare "svc" in its service block's namespace) and destination, or nil when
// none applies: the most specific, deny first among equals.
func (p *Policy) Winner(source, destination string) *Intention {
	return p.WinnerFor(ParseCaller(source, p.Namespace(source)), destination)
}

// WinnerFor is Winner for a caller whose namespace is known.
func (p *Policy) WinnerFor(c Caller, destination string) *Intention {
	best := -1
	var win *Intention
	dstNS := p.Namespace(destination)
	for i := range p.Intentions {
		in := &p.Intentions[i]
		if !matchSource(in, c, dstNS) || !match(in.Destination, destination) {
			continue
		}
		s := 0
		switch {
		case in.Source != Wildcard:
			s += 4 // one service
		case in.SourceNamespace != Wildcard:
			s += 2 // every service of one namespace
		}
		if in.Destination != Wildcard {
			s++
		}
		if s > best || (s == best && in.connAction() == Deny && win.connAction() != Deny) {
			best, win = s, in
		}
	}
	return win
}

// matchSource reports whether intention in's source names caller c, for a
// destination in namespace dstNS. A bare Wildcard source written without a
// namespace (SourceNamespace "") is any namespace too: "*" means every
// caller of the trust domain, as it always did.
func matchSource(in *Intention, c Caller, dstNS string) bool {
	if c.Service == "" && in.Source != Wildcard {
		return false
	}
	switch {
	case in.SourceNamespace == Wildcard, in.SourceNamespace == "" && in.Source == Wildcard:
		// any namespace
	case in.SourceNamespace == "":
		if c.Namespace != dstNS {
			return false
		}
	default:
		if c.Namespace != in.SourceNamespace {
			return false
		}
	}
	return match(in.Source, c.Service)
}

func (in *Intention) connAction() Action {
	if len(in.Permissions) == 0 {
		return in.Action
	}
	for _, perm := range in.Permissions {
		if perm.Action == Allow {
			return Allow
		}
	}
	return Deny
}

func match(pattern, name string) bool { return pattern == Wildcard || pattern == name }
