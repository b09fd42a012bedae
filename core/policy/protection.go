package policy

import "time"

// Protection is a protection block (the mesh's, or a service's over it):
// the defences of a sidecar's listeners (core/protect on the sidecar).
// A zero field keeps the default (or, for a service, the mesh's value).
type Protection struct {
	ReadHeaderTimeout       time.Duration `json:",omitempty"`
	IdleTimeout             time.Duration `json:",omitempty"`
	MaxHeaderBytes          int           `json:",omitempty"`
	MaxHeaderCount          int           `json:",omitempty"`
	MaxRequestBodyBytes     int64         `json:",omitempty"`
	MaxConcurrentStreams    int           `json:",omitempty"`
	MaxConnectionsPerSource int           `json:",omitempty"`
	MaxInFlight             int           `json:",omitempty"`
	// Blocking is when a source with intrusion signals is blocked; nil:
	// never.
	Blocking *Blocking `json:",omitempty"`
}

// Blocking blocks, for Duration, a source with Threshold intrusion
// signals within Window: client addresses when Addresses, mesh
// identities when Identities.
type Blocking struct {
	Threshold  int
	Window     time.Duration `json:",omitempty"`
	Duration   time.Duration `json:",omitempty"`
	Addresses  bool          `json:",omitempty"`
	Identities bool          `json:",omitempty"`
}

// Over is p with every field it leaves zero taken from base (a service's
// protection over the mesh's). base may be nil.
func (p Protection) Over(base *Protection) Protection {
	if base == nil {
		return p
	}
	pick := func(a, b int) int {
		if a != 0 {
			return a
		}
		return b
	}
	out := p
	if out.ReadHeaderTimeout == 0 {
		out.ReadHeaderTimeout = base.ReadHeaderTimeout
	}
	if out.IdleTimeout == 0 {
		out.IdleTimeout = base.IdleTimeout
	}
	out.MaxHeaderBytes = pick(p.MaxHeaderBytes, base.MaxHeaderBytes)
	out.MaxHeaderCount = pick(p.MaxHeaderCount, base.MaxHeaderCount)
	if out.MaxRequestBodyBytes == 0 {
		out.MaxRequestBodyBytes = base.MaxRequestBodyBytes
	}
	out.MaxConcurrentStreams = pick(p.MaxConcurrentStreams, base.MaxConcurrentStreams)
	out.MaxConnectionsPerSource = pick(p.MaxConnectionsPerSource, base.MaxConnectionsPerSource)
	out.MaxInFlight = pick(p.MaxInFlight, base.MaxInFlight)
	if out.Blocking == nil {
		out.Blocking = base.Blocking
	}
	return out
}
