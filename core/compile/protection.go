package compile

import (
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
)

// protection compiles a protection block; nil stays nil (the sidecar's
// defaults).
func protection(p *policy.Protection) *meshapi.Protection {
	if p == nil {
		return nil
	}
	out := &meshapi.Protection{
		ReadHeaderTimeout:       duration(p.ReadHeaderTimeout),
		IdleTimeout:             duration(p.IdleTimeout),
		MaxHeaderBytes:          uint32(p.MaxHeaderBytes),
		MaxHeaderCount:          uint32(p.MaxHeaderCount),
		MaxRequestBodyBytes:     uint64(p.MaxRequestBodyBytes),
		MaxConcurrentStreams:    uint32(p.MaxConcurrentStreams),
		MaxConnectionsPerSource: uint32(p.MaxConnectionsPerSource),
		MaxInFlight:             uint32(p.MaxInFlight),
	}
	if b := p.Blocking; b != nil {
		out.Blocking = &meshapi.ProtectionBlocking{
			Threshold: uint32(b.Threshold), Window: duration(b.Window), Duration: duration(b.Duration),
			Addresses: b.Addresses, Identities: b.Identities,
		}
	}
	return out
}
