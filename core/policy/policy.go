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
)

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
}

// Upstream is a service this one calls, reached by the app on a localhost port.
type Upstream struct {
	Service   string
	LocalPort int
	LB        LB
}

// Intention allows or denies connections from Source to Destination. Either
// may be Wildcard. Exact matches take precedence over wildcards; among
// equally specific intentions deny wins.
type Intention struct {
	Source      string
	Destination string
	Action      Action
}

// Decide returns what the policy does with a connection from source to
// destination, and whether an intention (rather than the default) decided.
func (p *Policy) Decide(source, destination string) (Action, bool) {
	best := -1
	var act Action
	for _, in := range p.Intentions {
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
		if s > best || (s == best && in.Action == Deny) {
			best, act = s, in.Action
		}
	}
	if best < 0 {
		return p.Mesh.DefaultAction, false
	}
	return act, true
}

func match(pattern, name string) bool { return pattern == Wildcard || pattern == name }
