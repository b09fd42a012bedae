package compile

import (
	"crypto/tls"
	"net"
	"strconv"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
)

// ExternalEndpointPrefix starts the instance ID of an external service's
// one endpoint: "external:payments".
const ExternalEndpointPrefix = "external:"

// external compiles what a caller's sidecar needs to reach external
// service dst: its one endpoint (its address and port), TLS origination,
// and the authorization the sidecar applies on the external service's
// behalf (it runs no sidecar to decide for itself).
func external(p *policy.Policy, dst policy.Service) (*meshapi.External, []*meshapi.Endpoint) {
	e := dst.External
	ext := &meshapi.External{
		Host:      hostHeader(e),
		Port:      uint32(e.Port),
		Authz:     authz(p, dst.Name),
		Namespace: nsOr(dst.Namespace),
	}
	if t := e.TLS; t != nil {
		ext.Tls = &meshapi.ExternalTLS{
			CaPem: t.CAPEM, ServerName: e.ServerName(), CertFile: t.CertFile, KeyFile: t.KeyFile,
		}
		if t.MinVersion == "1.3" {
			ext.Tls.MinVersion = tls.VersionTLS13
		}
	}
	ep := &meshapi.Endpoint{InstanceId: ExternalEndpointPrefix + dst.Name, Address: e.DialAddress(), Port: uint32(e.Port)}
	return ext, []*meshapi.Endpoint{ep}
}

// hostHeader is the Host header of requests to e: the host, with the port
// when it is not the scheme's default.
func hostHeader(e *policy.External) string {
	if (e.TLS != nil && e.Port == 443) || (e.TLS == nil && e.Port == 80) {
		return e.Host
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// egress is the instance's egress settings: set when the mesh denies
// undeclared destinations or the instance calls external services.
func egress(p *policy.Policy, svc policy.Service) *meshapi.Egress {
	var declared []string
	for _, u := range svc.Upstreams {
		if s, ok := p.Services[u.Service]; ok && s.External != nil {
			declared = append(declared, u.Service)
		}
	}
	if p.Mesh.Egress != policy.EgressDeny && len(declared) == 0 {
		return nil
	}
	eg := &meshapi.Egress{Declared: declared}
	if p.Mesh.Egress == policy.EgressDeny {
		eg.Mode = meshapi.EgressMode_EGRESS_MODE_DENY
	}
	return eg
}
