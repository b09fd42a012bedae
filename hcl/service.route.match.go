package policyhcl

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// match is a decoded match block, in a route block or an intention's
// permission block. Every condition must hold:
//
//	match {
//	  path         = "/exact"  # or path_prefix = "/api/", or path_regex = "/v[0-9]+/.*"
//	  methods      = ["GET", "HEAD"]
//	  grpc_service = "shop.Cart" # gRPC services only, instead of a path
//	  grpc_method  = "Get"       # needs grpc_service
//	  header "x-canary" { exact = "1" } # or prefix, regex, present = true; invert = true
//	  query "debug"     { present = true }
//	}
type match struct {
	policy.Match
	GRPC      bool // set from grpc_service; the service must speak gRPC
	GRPCRange hcl.Range
	DeclRange hcl.Range
}

var matchSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "path"}, {Name: "path_prefix"}, {Name: "path_regex"},
		{Name: "methods"}, {Name: "grpc_service"}, {Name: "grpc_method"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "header", LabelNames: []string{"name"}},
		{Type: "query", LabelNames: []string{"name"}},
	},
}

var keyMatchSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "exact"}, {Name: "prefix"}, {Name: "regex"}, {Name: "present"}, {Name: "invert"},
	},
}

// httpMethods are the methods a match may name.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}

func decodeMatchBlock(block *hcl.Block) (*match, hcl.Diagnostics) {
	m := &match{DeclRange: block.DefRange}
	content, diags := block.Body.Content(matchSchema)

	// The path: at most one of path, path_prefix, path_regex, grpc_service.
	var pathAttr *hcl.Attribute
	for _, kind := range []struct {
		name string
		kind policy.MatchKind
	}{{"path", policy.MatchExact}, {"path_prefix", policy.MatchPrefix}, {"path_regex", policy.MatchRegex}} {
		attr, ok := content.Attributes[kind.name]
		if !ok {
			continue
		}
		if pathAttr != nil {
			diags = append(diags, errorAt(attr.Range, "Conflicting path matches",
				fmt.Sprintf("This match already has %s at %s. A request has one path: give one of path, path_prefix and path_regex.", pathAttr.Name, at(pathAttr.Range))))
			continue
		}
		pathAttr = attr
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if !set {
			continue
		}
		switch {
		case kind.kind == policy.MatchRegex:
			diags = append(diags, checkRegex(attr, s)...)
		case !strings.HasPrefix(s, "/"):
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid path",
				fmt.Sprintf("The %s %q does not start with \"/\". Request paths always do; write %q.", attr.Name, s, "/"+s)))
			continue
		case strings.Contains(s, ";"):
			diags = append(diags, errorAt(attr.Expr.Range(), "Path parameters in a path match",
				fmt.Sprintf("The %s %q contains \";\". Rules match a request's path with each segment's ;parameters removed (as Tomcat and Jetty route, so that /admin;x=1 cannot dodge a rule on /admin): a match with \";\" would never hold. Remove the ;... part.", attr.Name, s)))
			continue
		}
		m.Path = policy.StringMatch{Kind: kind.kind, Value: s}
	}

	if attr, ok := content.Attributes["grpc_service"]; ok {
		m.GRPC, m.GRPCRange = true, attr.Range
		if pathAttr != nil {
			diags = append(diags, errorAt(attr.Range, "Conflicting path matches",
				fmt.Sprintf("This match already has %s at %s. A gRPC method is a path; give either grpc_service (and grpc_method) or a path.", pathAttr.Name, at(pathAttr.Range))))
		} else if svc, set, d := decodeString(attr); set {
			diags = append(diags, d...)
			if svc == "" || strings.ContainsAny(svc, "/ ") {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid gRPC service",
					fmt.Sprintf("The gRPC service %q is not a fully qualified service name. Write it as in the .proto file, package included, such as \"shop.Cart\".", svc)))
			} else {
				m.Path = policy.StringMatch{Kind: policy.MatchPrefix, Value: "/" + svc + "/"}
			}
		} else {
			diags = append(diags, d...)
		}
	}
	if attr, ok := content.Attributes["grpc_method"]; ok {
		meth, set, d := decodeString(attr)
		diags = append(diags, d...)
		switch {
		case !m.GRPC:
			diags = append(diags, errorAt(attr.Range, "gRPC method without service",
				"A gRPC method is named within its service. Add grpc_service (such as grpc_service = \"shop.Cart\") to this match."))
		case !set:
		case meth == "" || strings.ContainsAny(meth, "/ ."):
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid gRPC method",
				fmt.Sprintf("The gRPC method %q is not a method name. Give the name alone, such as \"Get\".", meth)))
		case m.Path.Kind == policy.MatchPrefix:
			m.Path = policy.StringMatch{Kind: policy.MatchExact, Value: m.Path.Value + meth}
		}
	}

	if attr, ok := content.Attributes["methods"]; ok {
		methods, d := decodeStringList(attr)
		diags = append(diags, d...)
		for _, meth := range methods {
			if !contains(httpMethods, meth) {
				detail := fmt.Sprintf("The method %q is not an HTTP method. Use upper case: one of %s.", meth, quoteList(httpMethods, "or"))
				if up := strings.ToUpper(meth); contains(httpMethods, up) {
					detail = fmt.Sprintf("Methods are upper case: write %q.", up)
				}
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid method", detail))
				continue
			}
			m.Methods = append(m.Methods, meth)
		}
	}

	for _, b := range content.Blocks {
		km, d := decodeKeyMatchBlock(b)
		diags = append(diags, d...)
		if km == nil {
			continue
		}
		if b.Type == "header" {
			m.Headers = append(m.Headers, *km)
		} else {
			m.Query = append(m.Query, *km)
		}
	}
	return m, diags
}

// decodeKeyMatchBlock decodes a header or query block.
func decodeKeyMatchBlock(block *hcl.Block) (*policy.KeyMatch, hcl.Diagnostics) {
	name := block.Labels[0]
	km := &policy.KeyMatch{Name: name}
	var diags hcl.Diagnostics
	if block.Type == "header" {
		name = strings.ToLower(name)
		km.Name = name
		if name == "" || strings.ContainsAny(name, " :\t") {
			diags = append(diags, errorAt(block.LabelRanges[0], "Invalid header name",
				fmt.Sprintf("%q is not an HTTP header name. Give a name such as \"x-canary\", without a colon.", block.Labels[0])))
		}
	} else if name == "" {
		diags = append(diags, errorAt(block.LabelRanges[0], "Invalid query parameter name", "A query parameter needs a name, such as \"debug\"."))
	}
	content, d := block.Body.Content(keyMatchSchema)
	diags = append(diags, d...)
	var kindAttr *hcl.Attribute
	for _, kind := range []policy.MatchKind{policy.MatchExact, policy.MatchPrefix, policy.MatchRegex, policy.MatchPresent} {
		attr, ok := content.Attributes[string(kind)]
		if !ok {
			continue
		}
		if kindAttr != nil {
			diags = append(diags, errorAt(attr.Range, "Conflicting value matches",
				fmt.Sprintf("This %s match already has %s at %s. Give one of exact, prefix, regex and present.", block.Type, kindAttr.Name, at(kindAttr.Range))))
			continue
		}
		kindAttr = attr
		if kind == policy.MatchPresent {
			b, set, d := decodeBool(attr)
			diags = append(diags, d...)
			if set && !b {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid present match",
					"present = false matches nothing useful; to match a missing "+block.Type+", write present = true and invert = true."))
			}
			km.Match = policy.StringMatch{Kind: policy.MatchPresent}
			continue
		}
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if !set {
			continue
		}
		if kind == policy.MatchRegex {
			diags = append(diags, checkRegex(attr, s)...)
		}
		km.Match = policy.StringMatch{Kind: kind, Value: s}
	}
	if kindAttr == nil && !diags.HasErrors() {
		diags = append(diags, errorAt(block.DefRange, "Missing value match",
			fmt.Sprintf("The %s %q match says nothing about the value. Give exact, prefix, regex or present = true.", block.Type, name)))
	}
	if attr, ok := content.Attributes["invert"]; ok {
		b, _, d := decodeBool(attr)
		diags = append(diags, d...)
		km.Invert = b
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return km, diags
}

// checkRegex reports a regular expression that RE2 cannot compile.
func checkRegex(attr *hcl.Attribute, s string) hcl.Diagnostics {
	if _, err := regexp.Compile("^(?:" + s + ")$"); err != nil {
		return hcl.Diagnostics{errorAt(attr.Expr.Range(), "Invalid regular expression",
			fmt.Sprintf("The regular expression %q does not compile: %v. Use RE2 syntax (no look-around or back-references); it must match the whole value.", s, err))}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
