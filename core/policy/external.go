package policy

// Egress is the mesh's answer for destinations outside it that no
// external_service declares (mesh { egress }).
type Egress string

const (
	// EgressAllow (the default): the mesh does not stop an app from
	// reaching undeclared destinations directly; declared ones are still
	// reached only through the sidecar's listeners.
	EgressAllow Egress = "allow"
	// EgressDeny: only declared external services, through the sidecar;
	// where isolation is enforced (the local adapter's guard), the app's
	// direct connections to non-loopback addresses are dropped.
	EgressDeny Egress = "deny"
)

// External is what makes a Service an external service: a destination
// outside the mesh that runs no sidecar. Callers reach it through an
// upstream like any service; their own sidecars authorize the call (by the
// intentions to the external service) and originate TLS to it.
type External struct {
	// Host is the name the destination is known by: the Host header of
	// HTTP requests, and by default the TLS server name.
	Host string
	// Address is where to connect ("" : Host, resolved by the sidecar).
	Address string `json:",omitempty"`
	Port    int
	TLS     *ExternalTLS `json:",omitempty"` // nil: plain TCP
}

// ExternalTLS is TLS origination to an external service.
type ExternalTLS struct {
	// CAFile is where the CA certificates came from (for plans and
	// messages); CAPEM is what the file held when the policy was loaded.
	CAFile string
	CAPEM  []byte `json:"-"`
	// SNI is the server name sent and verified ("" : the Host).
	SNI string `json:",omitempty"`
	// CertFile and KeyFile are an optional client certificate, as paths
	// on each caller's host, read by the sidecar.
	CertFile   string `json:",omitempty"`
	KeyFile    string `json:",omitempty"`
	MinVersion string `json:",omitempty"` // "1.2" (default) or "1.3"
}

// ServerName is the TLS server name: SNI, else the host.
func (e *External) ServerName() string {
	if e.TLS != nil && e.TLS.SNI != "" {
		return e.TLS.SNI
	}
	return e.Host
}

// DialAddress is where callers connect: the address, else the host.
func (e *External) DialAddress() string {
	if e.Address != "" {
		return e.Address
	}
	return e.Host
}

func egressName(e Egress) string {
	if e == "" {
		return string(EgressAllow)
	}
	return string(e)
}
