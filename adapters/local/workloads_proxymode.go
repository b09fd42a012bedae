package local

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// A service's proxy_mode: who carries its instances' traffic.
//
//	service "web" {
//	  ...
//	  proxy_mode = "node" # or "application", or "sidecar", the default
//	}
//
// "sidecar" gives every instance a weft-proxy of its own. "node" serves the
// instance from the adapter's one node proxy (a single weft-proxy --node
// process for every node-mode instance of the file), with the instance's
// own identity, listeners, policy and admin endpoints
// (docs/deployment-models.md). "application" does the same with one proxy
// per application (namespace and service) on the node, admitted for that
// application's instances only.
const (
	ProxyModeSidecar     = "sidecar"
	ProxyModeNode        = "node"
	ProxyModeApplication = "application"
)

// decodeProxyMode reads a service's proxy_mode attribute (nil: the
// default).
func decodeProxyMode(a *hcl.Attribute) (string, hcl.Diagnostics) {
	if a == nil {
		return ProxyModeSidecar, nil
	}
	v, diags := decodeString(a)
	if diags.HasErrors() {
		return ProxyModeSidecar, diags
	}
	switch v {
	case ProxyModeSidecar, ProxyModeNode, ProxyModeApplication:
		return v, nil
	case "instance": // the name for a proxy per instance
		return ProxyModeSidecar, nil
	}
	return ProxyModeSidecar, hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid proxy mode",
		Detail:   fmt.Sprintf("proxy_mode %q is not one of \"sidecar\" (or \"instance\": a proxy per instance, the default), \"application\" (one proxy for the application's instances on the node) and \"node\" (one proxy for the node's instances).", v),
		Subject:  a.Expr.Range().Ptr(),
	}}
}
