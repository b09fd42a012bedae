package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/authz"
	"github.com/weftmesh/weft/core/spiffe"
)

// External services (meshapi.External): an upstream whose destination is
// outside the mesh and runs no sidecar. The outbound listener is the same;
// what differs is done here:
//   - authorization: the caller's sidecar applies the intentions to the
//     external service, with its own identity as the caller (authorize),
//     since no sidecar at the destination can;
//   - the dial: TLS origination, verified against the policy's CA bundle
//     and the server name (also the SNI), or plain TCP without a tls block,
//     instead of mesh mTLS (dial);
//   - HTTP requests carry the external host as their Host header.

// externalState is what an outbound needs of an external upstream; it is
// rebuilt with every configuration (outboundState.ext).
type externalState struct {
	name   string
	host   string      // the Host header of requests
	tls    *tls.Config // nil: plain TCP; without NextProtos (set per dial)
	authz  *authz.Rules
	caller spiffe.Identity // this sidecar's own identity
	// key tells configurations apart: a change closes pooled connections.
	key string
}

// newExternal compiles up's External; listenerSpecs calls it first to
// refuse a configuration whose CA bundle does not parse.
func newExternal(up *meshapi.Upstream, cfg *meshapi.ProxyConfig) (*externalState, error) {
	ext := up.GetExternal()
	if ext == nil {
		return nil, nil
	}
	name := up.GetName()
	st := &externalState{name: name, host: ext.GetHost()}
	if st.host == "" {
		return nil, fmt.Errorf("upstream %q is an external service with no host", name)
	}
	// The external service's rules, read as its own sidecar would (with
	// its name and namespace), applied to this caller.
	st.authz = authz.New(ext.GetAuthz(), &meshapi.ProxyConfig{
		TrustDomain: cfg.GetTrustDomain(), Service: name, Namespace: ext.GetNamespace(),
	}, "")
	if id, err := spiffe.Parse(cfg.GetSpiffeId()); err == nil {
		st.caller = id
	}
	for i, r := range ext.GetAuthz().GetRules() {
		if r.GetSource() == "" {
			return nil, fmt.Errorf("upstream %q external.authz.rules[%d] has no source", name, i)
		}
		if _, err := authz.CompilePermissions(r); err != nil {
			return nil, fmt.Errorf("upstream %q external.authz.rules[%d]: %w", name, i, err)
		}
	}
	t := ext.GetTls()
	if t == nil {
		st.key = "plain"
		return st, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(t.GetCaPem()) {
		return nil, fmt.Errorf("upstream %q: the external service's CA bundle holds no PEM certificate; check its ca_file", name)
	}
	min := uint16(tls.VersionTLS12)
	if v := t.GetMinVersion(); v != 0 {
		if v != tls.VersionTLS12 && v != tls.VersionTLS13 {
			return nil, fmt.Errorf("upstream %q: unknown TLS version %#x", name, v)
		}
		min = uint16(v)
	}
	st.tls = &tls.Config{
		RootCAs:    pool,
		ServerName: t.GetServerName(),
		MinVersion: min,
	}
	if st.tls.ServerName == "" {
		h, _, err := net.SplitHostPort(st.host)
		if err != nil {
			h = st.host
		}
		st.tls.ServerName = h
	}
	if cf, kf := t.GetCertFile(), t.GetKeyFile(); cf != "" || kf != "" {
		// Read at each handshake: a certificate renewed on disk is used
		// from the next connection on.
		st.tls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return loadClientCert(cf, kf)
		}
	}
	st.key = fmt.Sprintf("tls %s %x %s %s %d", st.tls.ServerName, t.GetCaPem(), t.GetCertFile(), t.GetKeyFile(), min)
	return st, nil
}

func loadClientCert(certFile, keyFile string) (*tls.Certificate, error) {
	return loadKeyPair(certFile, keyFile, "client certificate", "client key")
}

// dial connects to the external service at addr: TLS with the ALPN
// protocols alpn, or plain TCP. A failed handshake says what was wrong
// with the server's certificate.
func (e *externalState) dial(ctx context.Context, addr string, alpn []string, timeout time.Duration) (net.Conn, error) {
	nd := &net.Dialer{Timeout: timeout}
	if e.tls == nil {
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, &dialError{addr: addr, err: fmt.Errorf("connecting to external service %s: %w", e.name, err)}
		}
		return c, nil
	}
	cfg := e.tls.Clone()
	cfg.NextProtos = alpn
	d := &tls.Dialer{NetDialer: nd, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{addr: addr, err: e.handshakeError(err)}
	}
	return c, nil
}

// handshakeError explains a failed TLS origination.
func (e *externalState) handshakeError(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("originating TLS to external service %s: its certificate is not signed by a CA of the service's ca_file "+
			"(refused: check ca_file, or whether something else answers at this address): %w", e.name, err)
	case errors.As(err, &host):
		return fmt.Errorf("originating TLS to external service %s: its certificate is not valid for %q (refused: check host or sni): %w",
			e.name, e.tls.ServerName, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("originating TLS to external service %s: its certificate is invalid (refused): %w", e.name, err)
	}
	return fmt.Errorf("originating TLS to external service %s: %w", e.name, err)
}

// authorizeRequest decides an HTTP request to the external service (in
// canonical form) as the service's own sidecar would.
func (e *externalState) authorizeRequest(r *http.Request) (bool, string) {
	return e.authz.AuthorizeRequest(e.caller, r, r.URL.Query())
}

// authorizeConn decides a TCP connection to the external service.
func (e *externalState) authorizeConn() (bool, string) { return e.authz.Authorize(e.caller) }

// dialUpstream dials an endpoint of the upstream in force: an external
// service's own way, else mesh mTLS with cfg.
func (o *outbound) dialUpstream(ctx context.Context, addr string, cfg *tls.Config, alpn []string) (net.Conn, error) {
	st := o.st.Load()
	if st.ext != nil {
		return st.ext.dial(ctx, addr, alpn, st.connect)
	}
	return dialMesh(ctx, addr, cfg, st.connect)
}

// refuseExternal answers a request that the external service's intentions
// deny with 403 (gRPC PERMISSION_DENIED) and says so in the log; it
// reports whether it did.
func (o *outbound) refuseExternal(w http.ResponseWriter, r *http.Request, st *outboundState, start time.Time) bool {
	if st.ext == nil {
		return false
	}
	ok, why := st.ext.authorizeRequest(r)
	if ok {
		return false
	}
	o.p.accessLine("access", "outbound", "REFUSED").str("dest", st.service).str("method", r.Method).
		str("path", r.URL.Path).int("status", http.StatusForbidden).str("reason", why).strIf("caller", st.ownID).request(r, nil).send(o.p)
	if isGRPC(r) {
		writeGRPCError(w, grpcPermissionDenied, why)
	} else {
		http.Error(w, why, http.StatusForbidden)
	}
	o.count(st, nil, http.StatusForbidden, "", time.Since(start))
	return true
}

func extKey(e *externalState) string {
	if e == nil {
		return ""
	}
	return e.key
}
