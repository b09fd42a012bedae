package policyhcl

import (
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/policy"
)

// Defaults of the blocking block (the sidecar's guard package has the
// same).
const (
	DefaultBlockingThreshold = 100
	DefaultBlockingWindow    = 10 * time.Second
	DefaultBlockingDuration  = time.Minute
)

// blocking is a decoded blocking block inside a protection block: a
// source (a client IP address, a mesh identity) with threshold intrusion
// signals (refused handshakes, denied requests, limit hits, malformed
// requests) within window is refused for duration. It blocks only the
// sorts of source it names: addresses, identities or both; neither is an
// error, since the block would do nothing.
//
//	blocking {
//	  threshold  = 100   # 1-1000000
//	  window     = "10s" # at most 1h
//	  duration   = "1m"  # at most 24h
//	  addresses  = true
//	  identities = false
//	}
type blocking struct {
	policy.Blocking
	DeclRange hcl.Range
}

var blockingSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "threshold"}, {Name: "window"}, {Name: "duration"}, {Name: "addresses"}, {Name: "identities"},
	},
}

func decodeBlockingBlock(block *hcl.Block) (*blocking, hcl.Diagnostics) {
	b := &blocking{DeclRange: block.DefRange, Blocking: policy.Blocking{
		Threshold: DefaultBlockingThreshold, Window: DefaultBlockingWindow, Duration: DefaultBlockingDuration,
	}}
	content, diags := block.Body.Content(blockingSchema)
	if attr, ok := content.Attributes["threshold"]; ok {
		n, set, d := decodeInt(attr, 1, 1000000, "threshold")
		diags = append(diags, d...)
		if set {
			b.Threshold = n
		}
	}
	for _, a := range []struct {
		name string
		hi   time.Duration
		to   *time.Duration
	}{{"window", time.Hour, &b.Window}, {"duration", 24 * time.Hour, &b.Duration}} {
		attr, ok := content.Attributes[a.name]
		if !ok {
			continue
		}
		d, set, dd := decodeDuration(attr)
		diags = append(diags, dd...)
		switch {
		case set && d > a.hi:
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid blocking "+a.name,
				"The "+a.name+" "+d.String()+" is too long. Give at most "+a.hi.String()+"."))
		case set:
			*a.to = d
		}
	}
	if attr, ok := content.Attributes["addresses"]; ok {
		v, _, d := decodeBool(attr)
		diags = append(diags, d...)
		b.Addresses = v
	}
	if attr, ok := content.Attributes["identities"]; ok {
		v, _, d := decodeBool(attr)
		diags = append(diags, d...)
		b.Identities = v
	}
	if !b.Addresses && !b.Identities && !diags.HasErrors() {
		diags = append(diags, errorAt(b.DeclRange, "Blocking blocks nothing",
			"This blocking block names no sort of source to block. Set addresses = true (client IP addresses), "+
				"identities = true (mesh identities) or both, or remove the block."))
	}
	return b, diags
}
