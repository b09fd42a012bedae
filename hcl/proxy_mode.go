package policyhcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/policy"
)

// proxy_mode (in a service block) and default_proxy_mode (in the mesh
// block) choose who may hold a service's certificates
// (docs/deployment-models.md, core/policy/proxymode.go):
//
//	mesh {
//	  default_proxy_mode = "instance" # every service that says nothing
//	}
//	service "api" {
//	  proxy_mode = "node" # or "application", or "instance"
//	}
//
// Unset in both: the scheduler decides alone, as before policy had a say.

// decodeProxyMode decodes a proxy_mode or default_proxy_mode attribute.
// set is false when the value is null or wrong (diags say why).
func decodeProxyMode(attr *hcl.Attribute) (policy.ProxyMode, bool, hcl.Diagnostics) {
	s, set, diags := decodeString(attr)
	if !set {
		return "", false, diags
	}
	for _, m := range policy.ProxyModes {
		if string(m) == s {
			return m, true, diags
		}
	}
	detail := fmt.Sprintf("The proxy mode %q is not supported. Use one of \"instance\" (a proxy per instance: the sidecar), "+
		"\"application\" (one proxy per application on a node) or \"node\" (one proxy per node).", s)
	switch names := []string{"instance", "application", "node"}; {
	case s == "sidecar":
		detail += ` Policy calls a sidecar "instance".`
	case suggest(s, names) != "":
		detail += fmt.Sprintf(" Did you mean %q?", suggest(s, names))
	}
	return "", false, append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid proxy mode",
		Detail:   detail,
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	})
}
