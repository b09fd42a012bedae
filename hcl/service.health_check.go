package policyhcl

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/weftmesh/weft/core/policy"
)

// Defaults and bounds of the health_check block.
const (
	DefaultHealthInterval           = 10 * time.Second
	DefaultHealthTimeout            = 2 * time.Second // or the interval, when shorter
	DefaultHealthUnhealthyThreshold = 2
	DefaultHealthHealthyThreshold   = 1

	MinHealthInterval  = 100 * time.Millisecond
	MaxHealthInterval  = 10 * time.Minute
	MinHealthTimeout   = 10 * time.Millisecond
	MaxHealthThreshold = 10
	maxHealthPathLen   = 1024
	maxGRPCServiceLen  = 255
)

// healthCheck is a decoded health_check block inside a service block:
// every sidecar of the service checks its own application, and takes it
// out while it fails (the sidecar answers new requests with the
// retryable signal and reports it to the controller, which removes the
// instance from every caller's endpoints).
//
//	health_check {
//	  http          = "/healthz" # GET this path (and query) of the app; or:
//	  # grpc        = true       # grpc.health.v1.Health/Check of the whole server,
//	  # grpc        = "shop.Cart" # or of one service; or:
//	  # tcp         = true       # a TCP connect
//	  expect_status = 200        # http only; default: any 2xx
//	  interval      = "2s"       # 100ms to 10m; default 10s
//	  timeout       = "1s"       # each probe, 10ms up to the interval; default 2s (or the interval)
//	  unhealthy_threshold = 2    # failures in a row that take the app out, 1 to 10; default 2
//	  healthy_threshold   = 1    # passes in a row that bring it back, 1 to 10; default 1
//	}
//
// Exactly one of http, grpc and tcp.
type healthCheck struct {
	policy.HealthCheck
	KindRange hcl.Range // the http, grpc or tcp attribute
	DeclRange hcl.Range
}

var healthCheckSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "http"}, {Name: "grpc"}, {Name: "tcp"}, {Name: "expect_status"},
		{Name: "interval"}, {Name: "timeout"}, {Name: "unhealthy_threshold"}, {Name: "healthy_threshold"},
	},
}

func decodeHealthCheckBlock(block *hcl.Block) (*healthCheck, hcl.Diagnostics) {
	hc := &healthCheck{DeclRange: block.DefRange, HealthCheck: policy.HealthCheck{
		Interval: DefaultHealthInterval, UnhealthyThreshold: DefaultHealthUnhealthyThreshold, HealthyThreshold: DefaultHealthHealthyThreshold,
	}}
	content, diags := block.Body.Content(healthCheckSchema)

	var kinds []*hcl.Attribute
	for _, name := range []string{"http", "grpc", "tcp"} {
		if attr, ok := content.Attributes[name]; ok {
			kinds = append(kinds, attr)
		}
	}
	switch len(kinds) {
	case 0:
		diags = append(diags, errorAt(hc.DeclRange, "Health check without a kind",
			"A health_check needs exactly one of http = \"/path\", grpc = true (or a gRPC service name) and tcp = true."))
	case 1:
		diags = append(diags, hc.decodeKind(kinds[0])...)
	default:
		diags = append(diags, errorAt(kinds[1].Range, "Conflicting health check kinds",
			fmt.Sprintf("This health_check already has %q at %s; a check is of exactly one kind. Keep one of http, grpc and tcp.", kinds[0].Name, at(kinds[0].Range))))
	}

	if attr, ok := content.Attributes["expect_status"]; ok {
		n, set, d := decodeInt(attr, 100, 599, "status")
		diags = append(diags, d...)
		if set {
			if hc.Kind != "" && hc.Kind != policy.HealthHTTP {
				diags = append(diags, errorAt(attr.Range, "Status without an HTTP check",
					fmt.Sprintf("expect_status applies to http checks only; this is a %s check. Remove it.", hc.Kind)))
			}
			hc.ExpectStatus = n
		}
	}
	var intervalSet bool
	if attr, ok := content.Attributes["interval"]; ok {
		d, set, dd := decodeDuration(attr)
		diags = append(diags, dd...)
		if set {
			if d < MinHealthInterval || d > MaxHealthInterval {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid health check interval",
					fmt.Sprintf("The interval %s is out of range. Use %s to %s.", d, MinHealthInterval, MaxHealthInterval)))
			} else {
				hc.Interval, intervalSet = d, true
			}
		}
	}
	hc.Timeout = min(DefaultHealthTimeout, hc.Interval)
	if attr, ok := content.Attributes["timeout"]; ok {
		d, set, dd := decodeDuration(attr)
		diags = append(diags, dd...)
		switch {
		case !set:
		case d < MinHealthTimeout:
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid health check timeout",
				fmt.Sprintf("The timeout %s is below %s. Give a probe at least %s.", d, MinHealthTimeout, MinHealthTimeout)))
		case d > hc.Interval:
			what := "the default interval " + hc.Interval.String()
			if intervalSet {
				what = "the interval " + hc.Interval.String()
			}
			diags = append(diags, errorAt(attr.Expr.Range(), "Health check timeout above its interval",
				fmt.Sprintf("The timeout %s is longer than %s: probes would overlap. Shorten the timeout or lengthen the interval.", d, what)))
		default:
			hc.Timeout = d
		}
	}
	for name, dst := range map[string]*int{"unhealthy_threshold": &hc.UnhealthyThreshold, "healthy_threshold": &hc.HealthyThreshold} {
		if attr, ok := content.Attributes[name]; ok {
			n, set, d := decodeInt(attr, 1, MaxHealthThreshold, "threshold")
			diags = append(diags, d...)
			if set {
				*dst = n
			}
		}
	}
	return hc, diags
}

// decodeKind decodes the one attribute that says what the check does.
func (hc *healthCheck) decodeKind(attr *hcl.Attribute) hcl.Diagnostics {
	hc.KindRange = attr.Range
	switch attr.Name {
	case "http":
		p, set, diags := decodeString(attr)
		if !set {
			if !diags.HasErrors() {
				diags = append(diags, missingArgument(attr))
			}
			return diags
		}
		if msg := checkHealthPath(p); msg != "" {
			return append(diags, errorAt(attr.Expr.Range(), "Invalid health check path", msg))
		}
		hc.Kind, hc.HTTPPath = policy.HealthHTTP, p
		return diags
	case "tcp":
		b, set, diags := decodeBool(attr)
		if !set {
			if !diags.HasErrors() {
				diags = append(diags, missingArgument(attr))
			}
			return diags
		}
		if !b {
			return append(diags, errorAt(attr.Expr.Range(), "TCP check turned off",
				"tcp = false checks nothing. Write tcp = true, or another kind (http, grpc), or remove the health_check block."))
		}
		hc.Kind = policy.HealthTCP
		return diags
	}
	// grpc: true (the whole server) or a service name.
	val, diags := attrValue(attr, cty.DynamicPseudoType)
	if diags.HasErrors() {
		return diags
	}
	switch {
	case val.IsNull():
		return append(diags, missingArgument(attr))
	case val.Type() == cty.Bool:
		if val.False() {
			return append(diags, errorAt(attr.Expr.Range(), "gRPC check turned off",
				"grpc = false checks nothing. Write grpc = true, a gRPC service name, or another kind, or remove the health_check block."))
		}
		hc.Kind = policy.HealthGRPC
	case val.Type() == cty.String:
		name := val.AsString()
		if msg := checkGRPCServiceName(name); msg != "" {
			return append(diags, errorAt(attr.Expr.Range(), "Invalid gRPC service name", msg))
		}
		hc.Kind, hc.GRPCService = policy.HealthGRPC, name
	default:
		return append(diags, errorAt(attr.Expr.Range(), "Incorrect attribute value type",
			fmt.Sprintf("grpc must be true or a gRPC service name (a string), not a %s.", val.Type().FriendlyName())))
	}
	return diags
}

// checkHealthPath returns why p cannot be a health check path, or "".
func checkHealthPath(p string) string {
	if len(p) > maxHealthPathLen {
		return fmt.Sprintf("The path is %d bytes long; use at most %d.", len(p), maxHealthPathLen)
	}
	if len(p) == 0 || p[0] != '/' {
		return fmt.Sprintf("The path %q does not begin with \"/\". Write the path the app serves its health on, such as \"/healthz\".", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return fmt.Sprintf("The path %q holds %q at byte %d. Use printable ASCII without spaces or \"#\"; percent-encode anything else.", p, c, i)
		}
	}
	return ""
}

// checkGRPCServiceName returns why name cannot be a gRPC service name
// ("package.Service"), or "".
func checkGRPCServiceName(name string) string {
	if name == "" {
		return "The gRPC service name is empty. Write grpc = true to check the whole server, or name a service such as \"shop.Cart\"."
	}
	if len(name) > maxGRPCServiceLen {
		return fmt.Sprintf("The gRPC service name is %d bytes long; use at most %d.", len(name), maxGRPCServiceLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("The gRPC service name %q holds %q at byte %d. Use letters, digits, \".\", \"_\" and \"-\".", name, c, i)
		}
	}
	return ""
}
