package policyhcl

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// externalService is a decoded external_service block: a destination
// outside the mesh that callers reach through an upstream, allowed by
// intentions like any service, with TLS originated by the caller's sidecar:
//
//	external_service "payments" {
//	  host     = "api.payments.example"   # Host header; TLS name unless sni says otherwise
//	  address  = "203.0.113.7"            # optional: where to connect (default: host)
//	  port     = 443
//	  protocol = "http"                   # or "tcp", "http2", "grpc" (the last two need tls)
//	  tls {
//	    ca_file = "payments-ca.pem"       # relative to this policy file
//	    sni     = "api.payments.example"  # optional
//	  }
//	}
type externalService struct {
	Name          string
	NameRange     hcl.Range
	Host          string
	HostRange     hcl.Range
	Address       string
	Port          int
	Protocol      policy.Protocol
	ProtocolRange hcl.Range
	TLS           *externalTLS

	DeclRange hcl.Range
}

var externalServiceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "host", Required: true},
		{Name: "address"},
		{Name: "port", Required: true},
		{Name: "protocol"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}},
}

// maxHostLen is the longest DNS name.
const maxHostLen = 253

func decodeExternalServiceBlock(block *hcl.Block) (*externalService, hcl.Diagnostics) {
	e := &externalService{
		Name:      block.Labels[0],
		NameRange: block.LabelRanges[0],
		Protocol:  DefaultProtocol,
		DeclRange: block.DefRange,
	}
	var diags hcl.Diagnostics
	if !model.ValidName(e.Name) {
		diags = append(diags, errorAt(e.NameRange, "Invalid external service name",
			fmt.Sprintf("The external service name %q is not a DNS label. It names the external service in upstreams and intentions: "+
				"use lower-case letters, digits and dashes, starting and ending with a letter or digit, at most 63 characters.", e.Name)))
	}
	content, moreDiags := block.Body.Content(externalServiceSchema)
	diags = append(diags, moreDiags...)

	if attr, ok := content.Attributes["host"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			e.HostRange = attr.Expr.Range()
			if why := checkHost(s); why != "" {
				diags = append(diags, errorAt(e.HostRange, "Invalid external host",
					fmt.Sprintf("The host %q %s. Give the DNS name the destination is known by (such as \"api.example.com\"), or an IP address.", s, why)))
			} else {
				e.Host = strings.ToLower(s)
			}
		}
	}
	if attr, ok := content.Attributes["address"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			if why := checkHost(s); why != "" {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid external address",
					fmt.Sprintf("The address %q %s. Give an IP address or a DNS name to connect to, without a port (port is its own argument).", s, why)))
			} else {
				e.Address = s
			}
		}
	}
	if attr, ok := content.Attributes["port"]; ok {
		port, d := decodePort(attr)
		if d.HasErrors() && port == 0 {
			// decodePort speaks of local ports; say what this one is.
			for _, dg := range d {
				if dg.Summary == "Invalid local port" {
					dg.Summary = "Invalid external port"
					dg.Detail = strings.Replace(dg.Detail, "that no other process on the instance listens on", "where the external service listens", 1)
				}
			}
		}
		diags = append(diags, d...)
		e.Port = port
	}
	if attr, ok := content.Attributes["protocol"]; ok {
		p, set, d := decodeEnum(attr, protocols, "Invalid protocol", "protocol")
		diags = append(diags, d...)
		if set {
			e.Protocol, e.ProtocolRange = p, attr.Expr.Range()
		}
	}
	for _, b := range content.Blocks {
		if e.TLS != nil {
			diags = append(diags, duplicateBlock("tls", "An external_service block", e.TLS.DeclRange, b.DefRange))
			continue
		}
		t, d := decodeExternalTLSBlock(b)
		diags = append(diags, d...)
		e.TLS = t
	}
	if e.TLS == nil && (e.Protocol == policy.HTTP2 || e.Protocol == policy.GRPC) {
		rng := e.ProtocolRange
		diags = append(diags, errorAt(rng, "HTTP/2 to an external service needs TLS",
			fmt.Sprintf("External service %q speaks %q, which its callers' sidecars negotiate with TLS (ALPN h2). Add a tls block, or use protocol \"http\" or \"tcp\".", e.Name, e.Protocol)))
	}
	return e, diags
}

// checkHost says what is wrong with a host name or IP address, or "".
func checkHost(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxHostLen:
		return "is longer than 253 characters"
	case strings.Contains(s, "://"):
		return "has a scheme; give the name alone"
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	if strings.ContainsAny(s, ":/") {
		return "has a port or a path; give the name alone"
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !model.ValidName(strings.ToLower(label)) {
			if label == "" {
				return "has an empty label"
			}
			return fmt.Sprintf("has the label %q, which is not a DNS label", label)
		}
	}
	return ""
}

// asService is how other blocks see the external service: a service they
// may name in upstreams and intentions (in the default namespace).
func (e *externalService) asService() *service {
	return &service{Name: e.Name, NameRange: e.NameRange, Namespace: model.DefaultNamespace, Protocol: e.Protocol,
		ProtocolRange: e.ProtocolRange, DeclRange: e.DeclRange}
}

func (e *externalService) toPolicy() policy.Service {
	ext := &policy.External{Host: e.Host, Address: e.Address, Port: e.Port}
	if e.TLS != nil {
		t := e.TLS.ExternalTLS
		ext.TLS = &t
	}
	return policy.Service{Name: e.Name, Namespace: model.DefaultNamespace, Protocol: e.Protocol, External: ext}
}

// checkExternals reports external services whose names a service or
// another external service already has, and intentions from an external
// service (it runs no sidecar, so it calls nothing in the mesh). It adds
// the others to declared.
func checkExternals(externals []*externalService, intentions []*intention, declared map[string]*service) hcl.Diagnostics {
	var diags hcl.Diagnostics
	mine := map[string]bool{}
	for _, e := range externals {
		if prev, dup := declared[e.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate service",
				Detail: fmt.Sprintf("A service or external service %q is already declared at %s. Services and external services share one "+
					"set of names (upstreams and intentions name them); rename one of the two.", e.Name, at(prev.DeclRange)),
				Subject: e.NameRange.Ptr(),
				Context: e.DeclRange.Ptr(),
			})
			continue
		}
		declared[e.Name] = e.asService()
		mine[e.Name] = true
	}
	for _, in := range intentions {
		if in.badEnds || !mine[in.SourceService] {
			continue
		}
		diags = append(diags, errorAt(in.SourceRange, "External service as intention source",
			fmt.Sprintf("%q is an external service: it runs outside the mesh with no sidecar, so no call from it is ever authorized by an intention. "+
				"Intentions name external services only as destinations (caller -> %q).", in.SourceService, in.SourceService)))
	}
	return diags
}
