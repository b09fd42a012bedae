package policyhcl

import (
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/policy"
)

// Bounds of the protection block.
const (
	maxReadHeaderTimeout = time.Hour
	maxIdleTimeout       = 24 * time.Hour
)

// protection is a decoded protection block: the defences of every
// sidecar's listeners (inside mesh), or of one service's inbound listener
// (inside a service, over the mesh's; service.protection.go). Every
// attribute is optional; an unset one keeps the default of
// docs/protection.md.
//
//	mesh {
//	  protection {
//	    read_header_timeout        = "10s"   # time to send a request's headers (and a TLS handshake)
//	    idle_timeout               = "5m"    # a keep-alive connection idle this long is closed
//	    max_header_bytes           = 65536   # a request's header block (1024-1048576)
//	    max_header_count           = 100     # header fields of a request
//	    max_request_body_bytes     = 0       # unset: no cap (bodies stream)
//	    max_concurrent_streams     = 250     # HTTP/2 streams per connection
//	    max_connections_per_source = 1024    # connections open from one IP address
//	    max_in_flight              = 4096    # requests in flight per listener; past it 503 + Retry-After
//	    blocking {                           # mesh.protection.blocking.go
//	      threshold  = 100                   # intrusion signals within window that block a source
//	      window     = "10s"
//	      duration   = "1m"
//	      addresses  = true                  # block IP addresses (default false)
//	      identities = false                 # block mesh identities (default false)
//	    }
//	  }
//	}
type protection struct {
	policy.Protection
	DeclRange hcl.Range
}

var protectionSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "read_header_timeout"}, {Name: "idle_timeout"},
		{Name: "max_header_bytes"}, {Name: "max_header_count"}, {Name: "max_request_body_bytes"},
		{Name: "max_concurrent_streams"}, {Name: "max_connections_per_source"}, {Name: "max_in_flight"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "blocking"}},
}

func decodeProtectionBlock(block *hcl.Block, where string) (*protection, hcl.Diagnostics) {
	p := &protection{DeclRange: block.DefRange}
	content, diags := block.Body.Content(protectionSchema)
	dur := func(name string, hi time.Duration) time.Duration {
		attr, ok := content.Attributes[name]
		if !ok {
			return 0
		}
		d, set, dd := decodeDuration(attr)
		diags = append(diags, dd...)
		if set && d > hi {
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid "+name,
				"The "+name+" "+d.String()+" is too long. Give at most "+hi.String()+"."))
			return 0
		}
		return d
	}
	num := func(name string, lo, hi int64) int {
		attr, ok := content.Attributes[name]
		if !ok {
			return 0
		}
		n, _, dd := decodeInt(attr, lo, hi, name)
		diags = append(diags, dd...)
		return n
	}
	p.ReadHeaderTimeout = dur("read_header_timeout", maxReadHeaderTimeout)
	p.IdleTimeout = dur("idle_timeout", maxIdleTimeout)
	p.MaxHeaderBytes = num("max_header_bytes", 1024, 1<<20)
	p.MaxHeaderCount = num("max_header_count", 1, 10000)
	p.MaxRequestBodyBytes = int64(num("max_request_body_bytes", 1, 1<<40))
	p.MaxConcurrentStreams = num("max_concurrent_streams", 1, 100000)
	p.MaxConnectionsPerSource = num("max_connections_per_source", 1, 1000000)
	p.MaxInFlight = num("max_in_flight", 1, 1000000)
	var blocking *blocking
	for _, b := range content.Blocks {
		if blocking != nil {
			diags = append(diags, duplicateBlock("blocking", where+"'s protection block", blocking.DeclRange, b.DefRange))
			continue
		}
		bl, d := decodeBlockingBlock(b)
		diags = append(diags, d...)
		blocking = bl
		pb := bl.Blocking
		p.Blocking = &pb
	}
	return p, diags
}
