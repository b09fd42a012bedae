package policyhcl

import (
	"fmt"
	"net/textproto"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// headerOps is a decoded request_headers or response_headers block inside
// a route block. The caller's sidecar applies it: remove first, then set
// (replacing any value), then add (appending a value).
//
//	request_headers {
//	  add    = { "x-tenant" = "blue" }
//	  set    = { "x-route" = "canary" }
//	  remove = ["x-debug"]
//	}
type headerOps struct {
	policy.HeaderOps
	DeclRange hcl.Range
}

var headerOpsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "add"}, {Name: "set"}, {Name: "remove"}},
}

// reservedHeaders are headers the mesh owns or HTTP forbids changing.
var reservedHeaders = []string{"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "x-weft-caller", "x-forwarded-client-cert"}

func decodeHeaderOpsBlock(block *hcl.Block) (*headerOps, hcl.Diagnostics) {
	h := &headerOps{DeclRange: block.DefRange}
	content, diags := block.Body.Content(headerOpsSchema)
	check := func(attr *hcl.Attribute, name string) bool {
		lower := strings.ToLower(name)
		switch {
		case name == "" || strings.ContainsAny(name, " :\t\r\n"):
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid header name",
				fmt.Sprintf("%q is not an HTTP header name. Give a name such as \"x-tenant\", without a colon.", name)))
			return false
		case contains(reservedHeaders, lower) || strings.HasPrefix(lower, ":"):
			diags = append(diags, errorAt(attr.Expr.Range(), "Reserved header",
				fmt.Sprintf("The header %q is set by HTTP or by the mesh and cannot be changed by policy. Choose another header.", name)))
			return false
		}
		return true
	}
	for _, name := range []string{"add", "set"} {
		attr, ok := content.Attributes[name]
		if !ok {
			continue
		}
		m, d := decodeStringMap(attr)
		diags = append(diags, d...)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := map[string]string{}
		for _, k := range keys {
			if check(attr, k) {
				out[textproto.CanonicalMIMEHeaderKey(k)] = m[k]
			}
		}
		if name == "add" {
			h.Add = out
		} else {
			h.Set = out
		}
	}
	if attr, ok := content.Attributes["remove"]; ok {
		list, d := decodeStringList(attr)
		diags = append(diags, d...)
		for _, k := range list {
			if check(attr, k) {
				h.Remove = append(h.Remove, textproto.CanonicalMIMEHeaderKey(k))
			}
		}
	}
	if len(h.Add) == 0 {
		h.Add = nil
	}
	if len(h.Set) == 0 {
		h.Set = nil
	}
	return h, diags
}
