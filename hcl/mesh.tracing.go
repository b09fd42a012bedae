package policyhcl

import (
	"fmt"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/weftmesh/weft/core/policy"
)

// Defaults and bounds of the tracing block.
const (
	DefaultTracingSampling     = 1.0
	DefaultTracingProtocol     = policy.TracingGRPC
	DefaultTracingServiceName  = "{service}"
	DefaultTracingMaxBatch     = 512
	DefaultTracingMaxQueue     = 2048
	DefaultTracingBatchTimeout = 5 * time.Second

	maxTracingBatch        = 8192
	maxTracingQueue        = 65536
	minTracingBatchTimeout = 10 * time.Millisecond
	maxTracingBatchTimeout = time.Minute
	maxTracingServiceName  = 255
)

// tracing is a decoded tracing block inside the mesh block: every
// sidecar traces the HTTP and gRPC requests it carries and exports the
// spans with OTLP to a collector (Jaeger, the OpenTelemetry Collector).
//
//	mesh {
//	  tracing {
//	    endpoint      = "127.0.0.1:4317" # the collector's OTLP port (required)
//	    protocol      = "grpc"           # or "http" (OTLP/HTTP protobuf, port 4318)
//	    sampling      = 0.01             # the fraction of new traces recorded, 0 to 1
//	    service_name  = "{service}"      # each sidecar's service.name; also {namespace}
//	    max_batch     = 512              # spans per export (1-8192)
//	    max_queue     = 2048             # spans waiting; more are dropped and counted (max_batch-65536)
//	    batch_timeout = "5s"             # the longest a span waits for its batch (10ms-1m)
//	  }
//	}
//
// A caller's sampling decision (traceparent's flag, B3's sampled) is
// always honoured; sampling applies to requests that arrive without one.
// Removing the block turns tracing off; every change applies without a
// sidecar restart.
type tracing struct {
	policy.Tracing
	DeclRange hcl.Range
}

var tracingSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "endpoint", Required: true}, {Name: "protocol"}, {Name: "sampling"}, {Name: "service_name"},
		{Name: "max_batch"}, {Name: "max_queue"}, {Name: "batch_timeout"},
	},
}

var tracingProtocols = []policy.TracingProtocol{policy.TracingGRPC, policy.TracingHTTP}

func decodeTracingBlock(block *hcl.Block) (*tracing, hcl.Diagnostics) {
	t := &tracing{DeclRange: block.DefRange, Tracing: policy.Tracing{
		Sampling: DefaultTracingSampling, Protocol: DefaultTracingProtocol, ServiceName: DefaultTracingServiceName,
		MaxBatch: DefaultTracingMaxBatch, MaxQueue: DefaultTracingMaxQueue, BatchTimeout: DefaultTracingBatchTimeout,
	}}
	content, diags := block.Body.Content(tracingSchema)
	if attr, ok := content.Attributes["endpoint"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			if why := checkCollectorEndpoint(s); why != "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid tracing endpoint",
					Detail: fmt.Sprintf("The endpoint %q %s. Give the collector's OTLP address as host:port, "+
						"such as \"127.0.0.1:4317\" (gRPC) or \"127.0.0.1:4318\" (protocol = \"http\").", s, why),
					Subject: attr.Expr.Range().Ptr(),
					Context: attr.Range.Ptr(),
				})
			} else {
				t.Endpoint = s
			}
		}
	}
	if attr, ok := content.Attributes["protocol"]; ok {
		p, set, d := decodeEnum(attr, tracingProtocols, "Invalid tracing protocol", "tracing protocol")
		diags = append(diags, d...)
		if set {
			t.Protocol = p
		}
	}
	if attr, ok := content.Attributes["sampling"]; ok {
		f, set, d := decodeFraction(attr)
		diags = append(diags, d...)
		if set {
			t.Sampling = f
		}
	}
	if attr, ok := content.Attributes["service_name"]; ok {
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if set {
			if why := checkServiceNameTemplate(s); why != "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid tracing service name",
					Detail: fmt.Sprintf("The service_name %q %s. Write the name the tracing backend shows, "+
						"with {service} and {namespace} for the sidecar's own, such as \"{service}\" or \"{namespace}.{service}\".", s, why),
					Subject: attr.Expr.Range().Ptr(),
					Context: attr.Range.Ptr(),
				})
			} else {
				t.ServiceName = s
			}
		}
	}
	var queueRange *hcl.Range
	for name, dst := range map[string]*int{"max_batch": &t.MaxBatch, "max_queue": &t.MaxQueue} {
		if attr, ok := content.Attributes[name]; ok {
			hi := int64(maxTracingBatch)
			if name == "max_queue" {
				hi = maxTracingQueue
				queueRange = attr.Expr.Range().Ptr()
			}
			n, set, d := decodeInt(attr, 1, hi, name)
			diags = append(diags, d...)
			if set {
				*dst = n
			}
		}
	}
	if t.MaxQueue < t.MaxBatch {
		rng := queueRange
		if rng == nil {
			rng = block.DefRange.Ptr()
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Tracing queue smaller than a batch",
			Detail: fmt.Sprintf("max_queue is %d, smaller than max_batch %d: a batch could never fill. "+
				"Raise max_queue to at least %d or lower max_batch.", t.MaxQueue, t.MaxBatch, t.MaxBatch),
			Subject: rng,
		})
	}
	if attr, ok := content.Attributes["batch_timeout"]; ok {
		d, set, dd := decodeDuration(attr)
		diags = append(diags, dd...)
		if set {
			if d < minTracingBatchTimeout || d > maxTracingBatchTimeout {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid batch timeout",
					Detail: fmt.Sprintf("The batch_timeout %s is out of range. Use a duration from %s to %s, such as \"5s\".",
						d, minTracingBatchTimeout, maxTracingBatchTimeout),
					Subject: attr.Expr.Range().Ptr(),
					Context: attr.Range.Ptr(),
				})
			} else {
				t.BatchTimeout = d
			}
		}
	}
	return t, diags
}

// decodeFraction decodes a number from 0 to 1.
func decodeFraction(attr *hcl.Attribute) (f float64, set bool, diags hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.Number)
	if diags.HasErrors() || val.IsNull() {
		return 0, false, diags
	}
	bf := val.AsBigFloat()
	if bf.Sign() >= 0 && bf.Cmp(big.NewFloat(1)) <= 0 {
		f, _ := bf.Float64()
		return f, true, diags
	}
	detail := fmt.Sprintf("The sampling %s is not a fraction from 0 to 1. Give the share of new traces to record: 1 for all, 0.01 for one in a hundred, 0 for none.", numberText(bf))
	if bf.IsInt() && bf.Cmp(big.NewFloat(100)) <= 0 && bf.Sign() > 0 {
		detail += fmt.Sprintf(" For %s percent write %g.", numberText(bf), mustFloat(bf)/100)
	}
	return 0, false, append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid sampling",
		Detail:   detail,
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	})
}

func mustFloat(bf *big.Float) float64 {
	f, _ := bf.Float64()
	return f
}

// checkCollectorEndpoint says what is wrong with a collector address, or "".
func checkCollectorEndpoint(s string) string {
	if strings.Contains(s, "://") {
		return "has a scheme; give host:port alone (protocol says gRPC or HTTP)"
	}
	if len(s) > 261 {
		return "is longer than a host name and a port can be"
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "is not host:port"
	}
	if host == "" {
		return "has no host"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("has the port %q; want a number from 1 to 65535", port)
	}
	if strings.ContainsAny(host, "/?#@ ") {
		return "has a path, user or space in its host"
	}
	return ""
}

// checkServiceNameTemplate says what is wrong with a service_name, or "".
func checkServiceNameTemplate(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > maxTracingServiceName {
		return fmt.Sprintf("is longer than %d characters", maxTracingServiceName)
	}
	rest := strings.NewReplacer("{service}", "", "{namespace}", "").Replace(s)
	if i := strings.IndexAny(rest, "{}"); i >= 0 {
		return "has a placeholder other than {service} and {namespace}"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "has a control character"
		}
	}
	return ""
}
