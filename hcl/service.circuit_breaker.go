package policyhcl

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// circuitBreaker is a decoded circuit_breaker block inside a service
// block; it applies in the sidecar of every caller of the service.
//
//	circuit_breaker {
//	  max_connections = 100 # connections open to the service: TCP, and HTTP/1.1 pooled
//	  max_requests    = 50  # requests in flight
//	  max_pending     = 10  # requests waiting for one of max_requests or, HTTP/1.1, a connection
//	  max_retries     = 3   # retries in flight
//	}
type circuitBreaker struct {
	policy.CircuitBreaker
	DeclRange hcl.Range
}

var circuitBreakerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max_connections"}, {Name: "max_requests"}, {Name: "max_pending"}, {Name: "max_retries"}},
}

func decodeCircuitBreakerBlock(block *hcl.Block) (*circuitBreaker, hcl.Diagnostics) {
	cb := &circuitBreaker{DeclRange: block.DefRange}
	content, diags := block.Body.Content(circuitBreakerSchema)
	var pendingAttr *hcl.Attribute
	for name, dst := range map[string]*int{
		"max_connections": &cb.MaxConnections, "max_requests": &cb.MaxRequests,
		"max_pending": &cb.MaxPending, "max_retries": &cb.MaxRetries,
	} {
		attr, ok := content.Attributes[name]
		if !ok {
			continue
		}
		lo := int64(1)
		if name == "max_pending" {
			lo, pendingAttr = 0, attr
		}
		n, _, d := decodeInt(attr, lo, 1000000, "limit")
		diags = append(diags, d...)
		*dst = n
	}
	if pendingAttr != nil && cb.MaxRequests == 0 && cb.MaxConnections == 0 && !diags.HasErrors() {
		diags = append(diags, errorAt(pendingAttr.Range, "Pending requests without a request or connection limit",
			"Requests wait only when max_requests are in flight or, on HTTP/1.1, max_connections are busy. Set one of them too, or remove max_pending."))
	}
	if len(content.Attributes) == 0 && !diags.HasErrors() {
		diags = append(diags, errorAt(cb.DeclRange, "Empty circuit breaker",
			"This circuit_breaker caps nothing. Set max_connections, max_requests, max_pending or max_retries, or remove it."))
	}
	return cb, diags
}
