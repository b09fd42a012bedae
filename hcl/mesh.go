package policyhcl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// Defaults of the mesh block.
const (
	DefaultTrustDomain   = "weft.local"
	DefaultDefaultAction = policy.Deny
)

// mesh is a decoded mesh block.
type mesh struct {
	TrustDomain        string
	TrustDomainRange   hcl.Range // zero when defaulted
	DefaultAction      policy.Action
	DefaultActionRange hcl.Range // zero when defaulted
	// IdentityBinding is "strict" (the default) or "permissive": whether a
	// workload that no binding names may still take its service's
	// identity (service.binding.go).
	IdentityBinding policy.BindingMode
	// Tracing is the tracing block (mesh.tracing.go); nil: off.
	Tracing *tracing
	// Egress is "allow" (the default) or "deny" (external_service.go).
	Egress policy.Egress
	// Protection is the protection block (mesh.protection.go); nil: the
	// defaults.
	Protection *protection
	// DefaultProxyMode is default_proxy_mode (proxy_mode.go); "": none.
	DefaultProxyMode policy.ProxyMode

	DeclRange hcl.Range
}

var meshSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "trust_domain"},
		{Name: "default_action"},
		{Name: "identity_binding"},
		{Name: "egress"},
		{Name: "default_proxy_mode"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "tracing"}, {Type: "protection"}},
}

var bindingModes = []policy.BindingMode{policy.BindingStrict, policy.BindingPermissive}

var actions = []policy.Action{policy.Allow, policy.Deny}

var egressModes = []policy.Egress{policy.EgressAllow, policy.EgressDeny}

func defaultMesh() *mesh {
	return &mesh{TrustDomain: DefaultTrustDomain, DefaultAction: DefaultDefaultAction, IdentityBinding: policy.BindingStrict}
}

func decodeMeshBlock(block *hcl.Block) (*mesh, hcl.Diagnostics) {
	m := defaultMesh()
	m.DeclRange = block.DefRange
	content, diags := block.Body.Content(meshSchema)

	if attr, ok := content.Attributes["trust_domain"]; ok {
		s, set, valDiags := decodeString(attr)
		diags = append(diags, valDiags...)
		if set {
			m.TrustDomainRange = attr.Expr.Range()
			if why := checkTrustDomain(s); why != "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid trust domain",
					Detail: fmt.Sprintf("The trust domain %q %s. It must be a DNS name such as %q: "+
						"dot-separated labels of lower-case letters, digits and dashes.", s, why, DefaultTrustDomain),
					Subject: m.TrustDomainRange.Ptr(),
					Context: attr.Range.Ptr(),
				})
			} else {
				m.TrustDomain = s
			}
		}
	}

	if attr, ok := content.Attributes["default_action"]; ok {
		a, set, valDiags := decodeEnum(attr, actions, "Invalid default action", "default action")
		diags = append(diags, valDiags...)
		if set {
			m.DefaultAction = a
			m.DefaultActionRange = attr.Expr.Range()
		}
	}

	if attr, ok := content.Attributes["identity_binding"]; ok {
		b, set, valDiags := decodeEnum(attr, bindingModes, "Invalid identity binding", "identity binding")
		diags = append(diags, valDiags...)
		if set {
			m.IdentityBinding = b
		}
	}
	if attr, ok := content.Attributes["egress"]; ok {
		e, set, valDiags := decodeEnum(attr, egressModes, "Invalid egress mode", "egress mode")
		diags = append(diags, valDiags...)
		if set {
			m.Egress = e
		}
	}
	if attr, ok := content.Attributes["default_proxy_mode"]; ok {
		pm, set, valDiags := decodeProxyMode(attr)
		diags = append(diags, valDiags...)
		if set {
			m.DefaultProxyMode = pm
		}
	}
	for _, b := range content.Blocks {
		if b.Type == "protection" {
			p, d := decodeProtectionBlock(b, "The mesh block")
			diags = append(diags, d...)
			if m.Protection != nil {
				diags = append(diags, duplicateBlock("protection", "The mesh block", m.Protection.DeclRange, b.DefRange))
				continue
			}
			m.Protection = p
			continue
		}
		if m.Tracing != nil {
			diags = append(diags, duplicateBlock("tracing", "The mesh block", m.Tracing.DeclRange, b.DefRange))
			continue
		}
		t, d := decodeTracingBlock(b)
		diags = append(diags, d...)
		m.Tracing = t
	}
	return m, diags
}

// checkTrustDomain says what is wrong with a trust domain, or "".
func checkTrustDomain(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.Contains(s, "://"):
		return "has a scheme; give the name alone, without spiffe:// or any path"
	case len(s) > 253:
		return "is longer than 253 characters"
	case strings.ToLower(s) != s:
		return "has upper-case letters"
	}
	for _, label := range strings.Split(s, ".") {
		if !model.ValidName(label) {
			if label == "" {
				return "has an empty label"
			}
			return fmt.Sprintf("has the label %q, which is not a DNS label", label)
		}
	}
	return ""
}

func (m *mesh) toPolicy() policy.Mesh {
	pm := policy.Mesh{TrustDomain: m.TrustDomain, DefaultAction: m.DefaultAction, IdentityBinding: m.IdentityBinding, Egress: m.Egress, DefaultProxyMode: m.DefaultProxyMode}
	if m.Tracing != nil {
		t := m.Tracing.Tracing
		pm.Tracing = &t
	}
	if m.Protection != nil {
		p := m.Protection.Protection
		pm.Protection = &p
	}
	return pm
}
