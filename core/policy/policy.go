package policy

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
}

// Mesh holds mesh-wide settings.
type Mesh struct {
	TrustDomain   string
	DefaultAction Action
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
}

// Upstream is a service this one calls, reached by the app on a localhost port.
type Upstream struct {
	Service   string
	LocalPort int
	LB        LB
	Hash      *Hash `json:",omitempty"` // ring_hash and maglev only
}

// Intention allows or denies connections from Source to Destination. Either
// may be Wildcard. Exact matches take precedence over wildcards; among
// equally specific intentions deny wins.
type Intention struct {
	Source      string
	Destination string
	Action      Action       // "" when Permissions decide
	Permissions []Permission `json:",omitempty"`
}

// Decide returns what the policy does with a connection from source to
// destination, and whether an intention (rather than the default) decided.
// An intention with permissions allows the connection when any of its
// permissions allows (each request is then decided by DecideRequest).
func (p *Policy) Decide(source, destination string) (Action, bool) {
	in := p.Winner(source, destination)
	if in == nil {
		return p.Mesh.DefaultAction, false
	}
	return in.connAction(), true
}

// Winner returns the intention that decides for source and destination, or
// nil when none applies: the most specific, deny first among equals.
func (p *Policy) Winner(source, destination string) *Intention {
	best := -1
	var win *Intention
	for i := range p.Intentions {
		in := &p.Intentions[i]
		if !match(in.Source, source) || !match(in.Destination, destination) {
			continue
		}
		s := 0
		if in.Source != Wildcard {
			s += 2
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
