package meshserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

// ControllerService is the service name in the controller's own identity.
const ControllerService = "weft-controller"

// ControllerNamespace is the namespace of the controller's own identity.
const ControllerNamespace = "weft-system"

// Options configure a Server.
type Options struct {
	CA       *ca.CA
	Join     *ca.JoinVerifier
	Registry *registry.Registry
	// TrustDomain returns the trust domain in force (from the policy).
	TrustDomain func() string
	// VerifyCredential checks a scheduler credential with the named
	// adapter (Nomad workload identity, Kubernetes service-account token)
	// and returns what it proves. Nil: sidecars can join with join tokens
	// only. Return an error wrapping ErrRetry when the check could not be
	// made right now (the adapter is restarting).
	VerifyCredential func(ctx context.Context, adapter, instanceID, credential string) (CredentialClaims, error)
	Logger           *slog.Logger
}

// CredentialClaims is what a scheduler credential proves.
type CredentialClaims struct {
	Instance  string
	Service   string
	Namespace string
}

// ErrRetry marks a credential check that could not be made now.
var ErrRetry = errors.New("try again shortly")

type versioned struct {
	version uint64
	cfg     *meshapi.ProxyConfig
}

type stream struct {
	instance string
	identity spiffe.Identity
	wake     chan struct{}
	mu       sync.Mutex
	acked    uint64
	rejected uint64
	errText  string
	since    time.Time
}

// Server implements meshapi.MeshServer.
type Server struct {
	meshapi.UnimplementedMeshServer
	o Options

	mu      sync.Mutex
	next    uint64
	configs map[string]versioned
	streams map[string]map[*stream]struct{}
}

// New returns a server with no configurations yet.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Server{
		o:       o,
		next:    uint64(time.Now().UnixMilli()),
		configs: map[string]versioned{},
		streams: map[string]map[*stream]struct{}{},
	}
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { meshapi.RegisterMeshServer(g, s) }

// TLSConfig returns the server-side TLS configuration: the controller's own
// certificate, and client certificates verified against the CA when given
// (Join is called without one).
func (s *Server) TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.o.CA.Pool(),
		MinVersion:   tls.VersionTLS12,
	}
}

// Update replaces the configurations. Those that changed get a new version
// and their streams are woken; instances that are gone are dropped (their
// sidecars keep their last configuration).
func (s *Server) Update(cfgs map[string]*meshapi.ProxyConfig) (changed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	for id, cfg := range cfgs {
		old, ok := s.configs[id]
		if ok && proto.Equal(old.cfg, cfg) {
			continue
		}
		s.configs[id] = versioned{version: s.next, cfg: cfg}
		changed++
		for st := range s.streams[id] {
			select {
			case st.wake <- struct{}{}:
			default:
			}
		}
	}
	for id := range s.configs {
		if _, ok := cfgs[id]; !ok {
			delete(s.configs, id)
		}
	}
	return changed
}

// Config returns the configuration of an instance and its version.
func (s *Server) Config(id string) (*meshapi.ProxyConfig, uint64, bool) {
	v, ok := s.current(id)
	return v.cfg, v.version, ok
}

func (s *Server) current(id string) (versioned, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.configs[id]
	return v, ok
}

// peerIdentity returns the SPIFFE identity of the caller's verified client
// certificate.
func (s *Server) peerIdentity(ctx context.Context) (spiffe.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffe.Identity{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return spiffe.Identity{}, status.Error(codes.Unauthenticated, "this call needs a client certificate issued by the mesh CA; call Join first")
	}
	id, err := spiffe.FromCert(ti.State.VerifiedChains[0][0])
	if err != nil {
		return spiffe.Identity{}, status.Error(codes.Unauthenticated, err.Error())
	}
	if td := s.o.TrustDomain(); id.TrustDomain != td {
		return spiffe.Identity{}, status.Errorf(codes.PermissionDenied, "identity %s is not in trust domain %q", id, td)
	}
	return id, nil
}

// Join admits a sidecar that presents a join token for an instance the
// registry holds, and issues its certificate.
func (s *Server) Join(ctx context.Context, req *meshapi.JoinRequest) (*meshapi.Credentials, error) {
	if req.CredentialAdapter != "" {
		return s.joinWithCredential(ctx, req)
	}
	var id spiffe.Identity
	_, err := s.o.Join.VerifyAnd(req.JoinToken, func(c ca.JoinClaims) error {
		if c.Instance != req.InstanceId {
			return status.Errorf(codes.PermissionDenied, "join token is for instance %q, not %q", c.Instance, req.InstanceId)
		}
		in, ok := s.o.Registry.Lookup(c.Adapter, c.Instance)
		if !ok {
			return status.Errorf(codes.Unavailable, "instance %q is not in adapter %s's snapshot yet; retry shortly", c.Instance, c.Adapter)
		}
		if in.Service != c.Service || in.NS() != nsOr(c.Namespace) {
			return status.Errorf(codes.PermissionDenied, "join token names service %s/%s but instance %q runs %s/%s", nsOr(c.Namespace), c.Service, c.Instance, in.NS(), in.Service)
		}
		id = spiffe.Identity{TrustDomain: s.o.TrustDomain(), Namespace: in.NS(), Service: in.Service}
		return nil
	})
	if err != nil {
		if _, ok := status.FromError(err); ok {
			s.o.Logger.Warn("join refused", "instance", req.InstanceId, "err", err)
			return nil, err
		}
		s.o.Logger.Warn("join refused", "instance", req.InstanceId, "err", err)
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	creds, err := s.issue(req.CsrDer, id)
	if err == nil {
		s.o.Logger.Info("sidecar joined", "instance", req.InstanceId, "identity", id.String())
	}
	return creds, err
}

// joinWithCredential admits a sidecar whose scheduler credential the named
// adapter vouches for, if that adapter's snapshot holds the instance with the
// service the credential proves.
func (s *Server) joinWithCredential(ctx context.Context, req *meshapi.JoinRequest) (*meshapi.Credentials, error) {
	refuse := func(code codes.Code, format string, args ...any) (*meshapi.Credentials, error) {
		err := status.Errorf(code, format, args...)
		s.o.Logger.Warn("join refused", "instance", req.InstanceId, "adapter", req.CredentialAdapter, "err", err)
		return nil, err
	}
	if s.o.VerifyCredential == nil {
		return refuse(codes.FailedPrecondition, "this controller does not accept scheduler credentials; join with a join token")
	}
	c, err := s.o.VerifyCredential(ctx, req.CredentialAdapter, req.InstanceId, req.Credential)
	if errors.Is(err, ErrRetry) {
		return refuse(codes.Unavailable, "checking the %s credential: %v", req.CredentialAdapter, err)
	}
	if err != nil {
		return refuse(codes.PermissionDenied, "the %s credential proves nothing: %v", req.CredentialAdapter, err)
	}
	if c.Instance != req.InstanceId {
		return refuse(codes.PermissionDenied, "the %s credential is for instance %q, not %q", req.CredentialAdapter, c.Instance, req.InstanceId)
	}
	in, ok := s.o.Registry.Lookup(req.CredentialAdapter, req.InstanceId)
	if !ok {
		return refuse(codes.Unavailable, "instance %q is not in adapter %s's snapshot yet; retry shortly", req.InstanceId, req.CredentialAdapter)
	}
	if in.Service != c.Service || in.NS() != nsOr(c.Namespace) {
		return refuse(codes.PermissionDenied, "the %s credential proves service %s/%s but instance %q runs %s/%s",
			req.CredentialAdapter, nsOr(c.Namespace), c.Service, req.InstanceId, in.NS(), in.Service)
	}
	id := spiffe.Identity{TrustDomain: s.o.TrustDomain(), Namespace: in.NS(), Service: in.Service}
	creds, err := s.issue(req.CsrDer, id)
	if err == nil {
		s.o.Logger.Info("sidecar joined", "instance", req.InstanceId, "identity", id.String(), "credential", req.CredentialAdapter)
	}
	return creds, err
}

// Renew issues a fresh certificate for the caller's own identity, if the
// instance it names still runs that service.
func (s *Server) Renew(ctx context.Context, req *meshapi.RenewRequest) (*meshapi.Credentials, error) {
	id, err := s.peerIdentity(ctx)
	if err != nil {
		return nil, err
	}
	e, ok := s.o.Registry.Find(req.InstanceId)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "instance %q is not in the registry; a sidecar of an instance that is gone cannot renew", req.InstanceId)
	}
	if e.Instance.Service != id.Service || e.Instance.NS() != id.Namespace {
		return nil, status.Errorf(codes.PermissionDenied, "identity %s may not renew for instance %q of service %s", id, req.InstanceId, e.Instance.Service)
	}
	return s.issue(req.CsrDer, id)
}

func (s *Server) issue(csr []byte, id spiffe.Identity) (*meshapi.Credentials, error) {
	chain, notAfter, err := s.o.CA.SignCSR(csr, id)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &meshapi.Credentials{
		CertChainPem: chain,
		RootsPem:     s.o.CA.RootsPEM(),
		SpiffeId:     id.String(),
		NotAfterUnix: notAfter.Unix(),
	}, nil
}

func nsOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// StreamConfig streams one instance's configuration to its sidecar.
func (s *Server) StreamConfig(srv meshapi.Mesh_StreamConfigServer) error {
	ctx := srv.Context()
	id, err := s.peerIdentity(ctx)
	if err != nil {
		return err
	}
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	if first.InstanceId == "" {
		return status.Error(codes.InvalidArgument, "the first ConfigRequest must name the instance")
	}
	st := &stream{instance: first.InstanceId, identity: id, wake: make(chan struct{}, 1), since: time.Now(), acked: first.AppliedVersion}
	s.mu.Lock()
	if s.streams[st.instance] == nil {
		s.streams[st.instance] = map[*stream]struct{}{}
	}
	s.streams[st.instance][st] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams[st.instance], st)
		if len(s.streams[st.instance]) == 0 {
			delete(s.streams, st.instance)
		}
		s.mu.Unlock()
	}()

	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := srv.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			st.mu.Lock()
			if req.RejectedVersion != 0 {
				st.rejected, st.errText = req.RejectedVersion, req.ErrorDetail
				s.o.Logger.Warn("sidecar rejected config", "instance", st.instance, "version", req.RejectedVersion, "error", req.ErrorDetail)
			}
			if req.AppliedVersion != 0 {
				st.acked = req.AppliedVersion
			}
			st.mu.Unlock()
		}
	}()

	var sent uint64
	for {
		if v, ok := s.current(st.instance); ok && v.version != sent {
			if v.cfg.Service != id.Service || v.cfg.Namespace != id.Namespace {
				return status.Errorf(codes.PermissionDenied, "identity %s may not receive the configuration of instance %q (service %s/%s)", id, st.instance, v.cfg.Namespace, v.cfg.Service)
			}
			if err := srv.Send(&meshapi.ConfigUpdate{Version: v.version, Config: v.cfg}); err != nil {
				return err
			}
			sent = v.version
		}
		select {
		case <-st.wake:
		case err := <-recvErr:
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// StreamStatus describes one connected sidecar.
type StreamStatus struct {
	Instance        string `json:"instance"`
	Identity        string `json:"identity"`
	Version         uint64 `json:"version"`
	AckedVersion    uint64 `json:"acked_version"`
	RejectedVersion uint64 `json:"rejected_version,omitempty"`
	RejectError     string `json:"reject_error,omitempty"`
	ConnectedSince  string `json:"connected_since"`
}

// Status lists the connected sidecars.
func (s *Server) Status() []StreamStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []StreamStatus
	for id, set := range s.streams {
		for st := range set {
			st.mu.Lock()
			out = append(out, StreamStatus{
				Instance: id, Identity: st.identity.String(), Version: s.configs[id].version,
				AckedVersion: st.acked, RejectedVersion: st.rejected, RejectError: st.errText,
				ConnectedSince: st.since.UTC().Format(time.RFC3339),
			})
			st.mu.Unlock()
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}

// Describe formats a one-line summary of the server, for logs.
func (s *Server) Describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d configurations, %d instances streaming", len(s.configs), len(s.streams))
}
