package policy

import "fmt"

// GatewayProtocol is what a gateway listener speaks to clients outside
// the mesh.
type GatewayProtocol string

const (
	GatewayHTTP  GatewayProtocol = "http"  // HTTP/1.1 and h2c, no TLS
	GatewayHTTPS GatewayProtocol = "https" // TLS ends at the gateway; HTTP/1.1 or h2 by ALPN
	GatewayTCP   GatewayProtocol = "tcp"   // bytes to one service
	// GatewayTLS passes TLS through, routed by the ClientHello's SNI; the
	// service's app ends it.
	GatewayTLS GatewayProtocol = "tls"
)

// Gateway is an ingress gateway: instances of Service (a service of its
// own, with its own identity and bindings) run weft-proxy in gateway mode
// and take traffic from outside the mesh on Listeners. Intentions apply
// to Service as a caller like to any other.
type Gateway struct {
	Name      string
	Service   string
	Listeners []GatewayListener
}

// GatewayListener is one port of a gateway.
type GatewayListener struct {
	Name     string
	Port     int
	Protocol GatewayProtocol
	TLS      *GatewayListenerTLS `json:",omitempty"` // https only
	Routes   []GatewayRoute      // first match wins
}

// GatewayListenerTLS is how an https listener ends TLS: a certificate and
// key from files on the gateway's host, or the gateway's mesh
// certificate.
type GatewayListenerTLS struct {
	CertFile        string   `json:",omitempty"`
	KeyFile         string   `json:",omitempty"`
	MeshCertificate bool     `json:",omitempty"`
	SNI             []string `json:",omitempty"` // names answered for; none: any
	MinVersion      string   `json:",omitempty"` // "1.2" or "1.3"
}

// GatewayRoute sends requests (or, for tcp and tls listeners, connections)
// for Hosts to Service. Route, when set, is the route's own L7 settings
// (splits, retries, timeouts, header changes, faults, mirrors), applied
// instead of the service's routes; nil: the service's own routes apply as
// for any caller.
type GatewayRoute struct {
	Name    string
	Hosts   []string `json:",omitempty"` // lower case, "*.example.com"; none: any
	Matches []Match  `json:",omitempty"` // any of them; none: every request
	Service string
	Route   *Route `json:",omitempty"`
}

// GatewayOf returns the gateway whose instances serve service, if any.
func (p *Policy) GatewayOf(service string) (Gateway, bool) {
	for _, g := range p.Gateways {
		if g.Service == service {
			return g, true
		}
	}
	return Gateway{}, false
}

// gatewaysDiff is the plan's part for gateways: each gateway added,
// removed, or changed (its service, and its listeners by name).
func gatewaysDiff(old, new map[string]Gateway) []ServiceChange {
	var out []ServiceChange
	for _, name := range unionKeys(old, new) {
		o, inOld := old[name]
		n, inNew := new[name]
		what := fmt.Sprintf("gateway %q", name)
		switch {
		case !inOld:
			out = append(out, ServiceChange{Change: Change{Kind: Added, What: what}})
		case !inNew:
			out = append(out, ServiceChange{Change: Change{Kind: Removed, What: what}})
		default:
			sc := ServiceChange{Change: Change{Kind: Changed, What: what, Fields: fieldDiff(o, n, "Service")}}
			sc.Parts = partsDiff("listener", o.Listeners, n.Listeners, func(l GatewayListener) string { return l.Name })
			if len(sc.Fields) > 0 || len(sc.Parts) > 0 {
				out = append(out, sc)
			}
		}
	}
	return out
}
