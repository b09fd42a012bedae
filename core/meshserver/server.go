package meshserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftmesh/weft/core/budget"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/spiffe"
)

// ControllerService is the service name in the controller's own identity.
const ControllerService = "weft-controller"

// ControllerNamespace is the namespace of the controller's own identity.
const ControllerNamespace = "weft-system"

// Options configure a Server.
type Options struct {
	CA   *ca.CA
	Join *ca.JoinVerifier
	// Workloads is what Join, Renew and the identity checks read: the
	// trust domain in force and the instances the adapters report. The
	// controller (core/controller) implements it and hands itself over
	// here at construction. Required.
	Workloads Workloads
	// VerifyCredential checks a scheduler credential with the named
	// adapter (Nomad workload identity, Kubernetes service-account token)
	// and returns what it proves. Nil: sidecars can join with join tokens
	// only. Return an error wrapping ErrRetry when the check could not be
	// made right now (the adapter is restarting).
	VerifyCredential func(ctx context.Context, adapter, instanceID, credential string) (CredentialClaims, error)
	Logger           *slog.Logger
	// Binder, when set, says whether policy lets an instance's workload
	// serve its service: Join and Renew refuse an instance it refuses.
	// The controller builds it from the policy in force (controller.
	// Controller implements it). Nil: no binding check (tests of other
	// parts).
	Binder Binder
	// Health, when set, receives what sidecars report of their own app's
	// health (their active checks) on their config streams: each report
	// for the instance its stream is bound to, once the registry holds
	// that instance with the stream's identity (a report never names
	// another instance). The controller implements it. Nil: reports are
	// ignored.
	Health Health
	// Stats, when set, receives the sidecars' golden-signal reports
	// (report.go); unset, the Report RPC is unimplemented.
	Stats Stats
	// Budgets divides the global rate limits among the sidecars that
	// report to the Budgets RPC (budgets.go). Nil: a Pool of this server's
	// own, asking for a report every second.
	Budgets *budget.Pool
	// RootsReload is how often RetireRoots reads the CA directory again,
	// to take a rotation that another controller replica sharing it made.
	// 0: every 10s; negative: never.
	RootsReload time.Duration
}

// CredentialClaims is what a scheduler credential proves.
type CredentialClaims struct {
	Instance  string
	Service   string
	Namespace string
	// Node is set when the credential is a node proxy's: the node it runs
	// on (node.go, joinNodeWithCredential).
	Node string
}

// Workloads is the controller's side of identity: what a sidecar's
// identity is checked against. core/controller.Controller implements it
// from its registry and the policy in force.
type Workloads interface {
	// TrustDomain is the trust domain in force (from the policy).
	TrustDomain() string
	// Lookup returns instance id as adapter's latest snapshot has it.
	Lookup(adapter, id string) (model.Instance, bool)
	// Instance returns instance id from whichever adapter reports it, and
	// that adapter.
	Instance(id string) (adapter string, in model.Instance, ok bool)
}

// Health receives sidecars' health reports. Its methods are called from
// the streams' goroutines and must not block for long.
type Health interface {
	// ReportHealth is the latest result of instanceID's sidecar checking
	// its app: healthy or not, and why (at most MaxReasonBytes, valid
	// UTF-8).
	ReportHealth(instanceID string, healthy bool, reason string)
	// StreamGone says the last config stream of instanceID ended after it
	// reported: its reports stop until it reconnects.
	StreamGone(instanceID string)
}

// HealthReportGap is the least time between two health reports a stream
// hands to Options.Health: reports that come faster are coalesced, and the
// latest is handed over when the gap has passed, so a sidecar that flaps
// (or a hostile one) cannot make the controller recompile its callers'
// configurations faster than that.
const HealthReportGap = 200 * time.Millisecond

// MaxReasonBytes is the most of a health report's reason that is kept;
// the rest is cut.
const MaxReasonBytes = 256

// Binder says whether policy binds an instance's workload to its service.
type Binder interface {
	// Allowed returns nil when a binding of in.Service names in.Workload,
	// an error wrapping ErrPermissive when none does but the mesh's
	// identity_binding is permissive (the identity is issued with a
	// warning), and any other error, saying what binding to add, to refuse.
	Allowed(adapter string, in model.Instance) error
}

// ErrPermissive marks an unbound workload that permissive identity
// binding lets through.
var ErrPermissive = errors.New(`identity_binding = "permissive" lets it through`)

// ErrRetry marks a credential check that could not be made now.
var ErrRetry = errors.New("try again shortly")

// versioned is one instance's configuration as the server holds it.
type versioned struct {
	version uint64
	cfg     *meshapi.ProxyConfig
	sum     [sha256.Size]byte // of cfg's deterministic encoding: what Update compares
	// msg is the ConfigUpdate (version and cfg) encoded: cfg is encoded
	// once, when it arrives, and every stream of the instance sends these
	// same bytes (send).
	msg []byte
}

// digest encodes cfg deterministically into buf and returns the SHA-256 of
// the encoding, and the encoding. Update compares digests instead of whole
// configurations with proto.Equal, which walks them by reflection:
// BenchmarkUpdate (10,000 configurations of 100 endpoints) went from 168
// ms to 106 ms per update, and the hashing runs outside the server's lock.
func digest(cfg *meshapi.ProxyConfig, buf []byte) ([sha256.Size]byte, []byte) {
	buf, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf[:0], cfg)
	if err != nil {
		// Cannot happen for a message built in memory; a zero digest
		// never matches one of an encoding, so the config counts as new.
		return [sha256.Size]byte{}, buf
	}
	return sha256.Sum256(buf), buf
}

// headerRoom is the most a ConfigUpdate's version field takes: its tag
// and a 64-bit varint.
const headerRoom = 1 + binary.MaxVarintLen64

// pending is a configuration encoded (and hashed) before the server's
// lock is taken: body holds, after headerRoom free bytes, the
// ConfigUpdate's config field (tag, length, encoding); nil when the
// configuration was unchanged then and was not kept.
type pending struct {
	sum  [sha256.Size]byte
	body []byte
}

// frame copies enc, a configuration's encoding, into a new buffer as a
// ConfigUpdate's config field, leaving headerRoom free in front for the
// version (stamp).
func frame(enc []byte) []byte {
	b := make([]byte, headerRoom, headerRoom+1+protowire.SizeVarint(uint64(len(enc)))+len(enc))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, enc)
}

// stamp writes version into the room frame left and returns the whole
// ConfigUpdate message.
func stamp(body []byte, version uint64) []byte {
	var h [headerRoom]byte
	hdr := protowire.AppendVarint(protowire.AppendTag(h[:0], 1, protowire.VarintType), version)
	at := headerRoom - len(hdr)
	copy(body[at:], hdr)
	return body[at:]
}

// send sends the encoded ConfigUpdate msg as is: a message whose only
// content is msg, as unknown fields, is marshalled by gRPC's codec by
// copying msg, and the sidecar decodes it as the ConfigUpdate it is.
func send(srv meshapi.Mesh_StreamConfigServer, msg []byte) error {
	u := &meshapi.ConfigUpdate{}
	u.ProtoReflect().SetUnknown(protoreflect.RawFields(msg))
	return srv.Send(u)
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
	// health is the latest health report not yet handed to Options.Health
	// (the recv goroutine sets it, the stream's loop takes it); healthWake
	// wakes the loop.
	health     *meshapi.HealthReport
	healthWake chan struct{}
	// What the sidecar last said of itself (ConfigRequest): its build,
	// its clock's offset from ours (its clock minus ours when its request
	// arrived, network delay included), its certificate's expiry.
	proxyVersion string
	skew         time.Duration
	certNotAfter int64
	reportedAt   time.Time
}

// appliedVersion is the version the sidecar says it applied last.
func (st *stream) appliedVersion() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.acked
}

// noteSelf keeps what req says of the sidecar. st.mu held.
func (st *stream) noteSelf(req *meshapi.ConfigRequest) {
	if req.GetSentUnixMs() == 0 {
		return // a sidecar from before these fields
	}
	now := time.Now()
	st.proxyVersion = boundReason(req.GetProxyVersion())
	st.skew = time.UnixMilli(req.GetSentUnixMs()).Sub(now)
	st.certNotAfter = req.GetCertNotAfterUnix()
	st.reportedAt = now
}

// Server implements meshapi.MeshServer.
type Server struct {
	meshapi.UnimplementedMeshServer
	o Options

	mu sync.Mutex
	// next and count count the configurations stamped (next from the
	// clock's milliseconds, count from 0); policyIndex is the index of
	// the policy they are compiled from (SetPolicyIndex). A version is
	// made of them (version).
	next        uint64
	count       uint64
	policyIndex uint64
	configs     map[string]versioned
	streams     map[string]map[*stream]struct{}
	trust       *meshapi.TrustBundle // stamped into every configuration
	// crosses are the cross-signed roots the CA's chains carried while
	// this server ran. They stay in the controller's own chain after their
	// roots retire, so a sidecar started with a bootstrap bundle from
	// before a rotation (an adapter's --trust-bundle file) still verifies
	// the controller and can join; it gets the current roots with its
	// certificate.
	crosses [][]byte
	leaves  map[string]leafInfo // the last certificate issued, by instance
	// reported holds the instances some stream of which handed a health
	// report to Options.Health since the instance last had no stream.
	reported map[string]bool
	rotated  chan struct{} // wakes RetireRoots after a rotation
	tap      tapHub        // tap sessions and the sidecars' tap streams (tap.go)
}

// leafInfo is what the server remembers of the last certificate it issued
// to an instance.
type leafInfo struct {
	root     string
	notAfter time.Time
}

// New returns a server with no configurations yet.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Budgets == nil {
		o.Budgets = budget.NewPool(budget.Options{})
	}
	s := &Server{
		o:        o,
		next:     uint64(time.Now().UnixMilli()),
		configs:  map[string]versioned{},
		streams:  map[string]map[*stream]struct{}{},
		trust:    trustOf(o.CA),
		leaves:   map[string]leafInfo{},
		reported: map[string]bool{},
		rotated:  make(chan struct{}, 1),
	}
	s.rememberCrosses()
	return s
}

// rememberCrosses adds the CA's current cross-signed roots to crosses.
func (s *Server) rememberCrosses() {
	if s.o.CA == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.o.CA.CrossSigned() {
		if !slices.ContainsFunc(s.crosses, func(k []byte) bool { return bytes.Equal(k, c) }) {
			s.crosses = append(s.crosses, c)
		}
	}
}

func (s *Server) crossSigned() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.crosses)
}

// trustOf is the bundle configurations carry; nil without a CA (tests).
func trustOf(c *ca.CA) *meshapi.TrustBundle {
	if c == nil {
		return nil
	}
	return &meshapi.TrustBundle{RootsPem: c.RootsPEM(), ActiveRootId: c.ActiveRootID()}
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { meshapi.RegisterMeshServer(g, s) }

// TLSConfig returns the server-side TLS configuration: the controller's own
// certificate, and client certificates verified against the CA's roots in
// force at each handshake, when given (Join is called without one).
func (s *Server) TLSConfig(cert tls.Certificate) *tls.Config {
	return s.tlsConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })
}

func (s *Server) tlsConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	base := &tls.Config{
		GetCertificate: getCert,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		MinVersion:     tls.VersionTLS12,
	}
	cfg := base.Clone()
	// The roots change with a rotation: each handshake takes the current ones.
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = s.o.CA.Pool()
		return c, nil
	}
	return cfg
}

// ServingTLSConfig is TLSConfig with a certificate for the controller's
// identity id and hosts that the server issues itself, and issues again at
// half its lifetime and after a root rotation, so a controller that runs
// for days keeps a valid certificate from the active root.
func (s *Server) ServingTLSConfig(id spiffe.Identity, hosts []string) (*tls.Config, error) {
	sc := &servingCert{ca: s.o.CA, id: id, hosts: hosts, log: s.o.Logger, srv: s}
	if _, err := sc.get(nil); err != nil {
		return nil, err
	}
	return s.tlsConfig(sc.get), nil
}

type servingCert struct {
	ca    *ca.CA
	id    spiffe.Identity
	hosts []string
	log   *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	root    string
	renewAt time.Time
	srv     *Server
}

func (sc *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	root := sc.ca.ActiveRootID()
	if sc.cert != nil && root == sc.root && time.Now().Before(sc.renewAt) {
		return sc.cert, nil
	}
	cert, err := sc.ca.ServerCertificate(sc.id, sc.hosts)
	if err != nil {
		if sc.cert != nil && time.Now().Before(sc.cert.Leaf.NotAfter) {
			sc.log.Error("issuing the controller's certificate again; keeping the current one", "err", err)
			return sc.cert, nil
		}
		return nil, fmt.Errorf("issuing the controller's certificate: %w", err)
	}
	for _, c := range sc.srv.crossSigned() {
		if !slices.ContainsFunc(cert.Certificate, func(k []byte) bool { return bytes.Equal(k, c) }) {
			cert.Certificate = append(cert.Certificate, c)
		}
	}
	nb, na := cert.Leaf.NotBefore, cert.Leaf.NotAfter
	sc.cert, sc.root, sc.renewAt = &cert, root, nb.Add(na.Sub(nb)/2)
	return sc.cert, nil
}

// Configuration versions compare across controller replicas. Without a
// replicated policy (index 0) a version is the server's count of stamps,
// which starts at the clock's milliseconds (so a restarted controller
// begins above the last run). Compiled from a replicated policy, a
// version is replicated (the top bit, above any count) | the policy's
// raft index << 32 | a count of this server's stamps under that layout:
// a configuration of a newer policy is newer on every replica, whatever
// each one's count, and newer than any of a policy read from files. A
// sidecar that moves to a replica that has not yet applied the policy it
// holds gets nothing older from it (StreamConfig holds the configuration
// back) and, once that replica applies the policy, a version above the
// one it holds: the replica's count is raised past the sidecar's when it
// subscribes (raiseAboveLocked). The index takes 31 bits and the count
// 32 (2^32 stamps: years at ten builds a second).
const (
	replicated = 1 << 63
	countMask  = 1<<32 - 1
	indexMask  = 1<<31 - 1
)

// policyIndexOf is the policy index a version begins with (0: a policy
// read from files).
func policyIndexOf(version uint64) uint64 {
	if version&replicated == 0 {
		return 0
	}
	return version >> 32 & indexMask
}

// version is the version of the configurations stamped now. s.mu held.
func (s *Server) version() uint64 {
	if s.policyIndex == 0 {
		return s.next
	}
	return replicated | s.policyIndex<<32 | s.count&countMask
}

// stampLocked counts one more stamp and returns its version. s.mu held.
func (s *Server) stampLocked() uint64 {
	s.next++
	s.count++
	return s.version()
}

// SetPolicyIndex says that the configurations published from now on are
// compiled from the policy applied at the replicated log's index (0: a
// policy read from files). The controller calls it before it publishes a
// build.
func (s *Server) SetPolicyIndex(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policyIndex = index & indexMask
}

// Update replaces the configurations. Those that changed get a new version
// and their streams are woken; instances that are gone are dropped (their
// sidecars keep their last configuration). Update sets the trust bundle of
// every configuration in cfgs.
func (s *Server) Update(cfgs map[string]*meshapi.ProxyConfig) (changed int) {
	return s.publish(cfgs, nil, true)
}

// Apply is Update for a delta (core/compile.Compiler's): the
// configurations in changed replace the ones held (those that differ get
// a new version and their streams are woken), those in removed are
// dropped, and every other one is kept as it is. Apply sets the trust
// bundle of every configuration in changed.
func (s *Server) Apply(changed map[string]*meshapi.ProxyConfig, removed []string) int {
	return s.publish(changed, removed, false)
}

// publish encodes and hashes each configuration of cfgs once, outside the
// lock, and keeps the encoding of those that changed; then, under the
// lock, stamps their version and wakes their streams. all: cfgs is every
// configuration (Update); else removed lists the ones that are gone.
func (s *Server) publish(cfgs map[string]*meshapi.ProxyConfig, removed []string, all bool) (changed int) {
	heldSum := func(id string) ([sha256.Size]byte, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		v, ok := s.configs[id]
		return v.sum, ok
	}
	s.mu.Lock()
	trust := s.trust
	s.mu.Unlock()
	type item struct {
		id  string
		cfg *meshapi.ProxyConfig
		pending
	}
	items := make([]item, 0, len(cfgs))
	var buf []byte
	for id, cfg := range cfgs {
		cfg.Trust = trust
		it := item{id: id, cfg: cfg}
		it.sum, buf = digest(cfg, buf)
		if old, ok := heldSum(id); !ok || old != it.sum {
			it.body = frame(buf) // kept: it is what the streams will send
		}
		items = append(items, it)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trust != trust { // the roots changed meanwhile (RootsChanged)
		for i := range items {
			items[i].cfg.Trust = s.trust
			items[i].sum, buf = digest(items[i].cfg, buf)
			items[i].body = frame(buf)
		}
	}
	version := s.stampLocked()
	for _, it := range items {
		old, ok := s.configs[it.id]
		if ok && old.sum == it.sum {
			continue
		}
		if it.body == nil {
			// Unchanged when it was hashed, changed since (another
			// Update ran meanwhile): encode it now.
			var enc []byte
			it.sum, enc = digest(it.cfg, nil)
			it.body = frame(enc)
		}
		s.configs[it.id] = versioned{version: version, cfg: it.cfg, sum: it.sum, msg: stamp(it.body, version)}
		changed++
		for st := range s.streams[it.id] {
			select {
			case st.wake <- struct{}{}:
			default:
			}
		}
	}
	if all {
		for id := range s.configs {
			if _, ok := cfgs[id]; !ok {
				delete(s.configs, id)
			}
		}
	} else {
		for _, id := range removed {
			if _, ok := cfgs[id]; !ok {
				delete(s.configs, id)
			}
		}
	}
	for id := range s.leaves {
		if _, ok := s.configs[id]; !ok {
			delete(s.leaves, id)
		}
	}
	return changed
}

// RootsChanged sends the CA's current trust bundle to every sidecar: each
// configuration gets it and a new version. Call it after the CA's roots
// changed (RotateRoot and RetireRoots do).
func (s *Server) RootsChanged() {
	s.rememberCrosses()
	trust := trustOf(s.o.CA)
	s.mu.Lock()
	defer s.mu.Unlock()
	if proto.Equal(s.trust, trust) {
		return
	}
	s.trust = trust
	version := s.stampLocked()
	var buf []byte
	for id, v := range s.configs {
		// A copy: streams may be sending the old one right now.
		cfg := proto.Clone(v.cfg).(*meshapi.ProxyConfig)
		cfg.Trust = trust
		var sum [sha256.Size]byte
		sum, buf = digest(cfg, buf)
		s.configs[id] = versioned{version: version, cfg: cfg, sum: sum, msg: stamp(frame(buf), version)}
		for st := range s.streams[id] {
			select {
			case st.wake <- struct{}{}:
			default:
			}
		}
	}
}

// RotateRoot makes a new CA root active (ca.CA.Rotate) and sends the new
// bundle to every sidecar; each then trusts both roots and renews its
// certificate from the new one at once.
func (s *Server) RotateRoot() (ca.Rotation, error) {
	r, err := s.o.CA.Rotate()
	if err != nil {
		return r, err
	}
	s.o.Logger.Info("CA root rotated; sidecars renew from the new root, the old one stays trusted until its leaves expire",
		"old", r.Old.ID, "new", r.New.ID, "old_retires_at", r.Old.RetireAt.Format(time.RFC3339))
	s.RootsChanged()
	select {
	case s.rotated <- struct{}{}:
	default:
	}
	return r, nil
}

// RetireRoots drops each previous root from the bundle when its last leaf
// has expired (ca.CA.Retire), and sends the smaller bundle to the
// sidecars, until ctx ends. Every Options.RootsReload it also reads the
// CA directory again (ca.CA.Reload), so a rotation made by another replica
// reaches this one's sidecars too. Run it once per server.
func (s *Server) RetireRoots(ctx context.Context) {
	reloadEvery := s.o.RootsReload
	if reloadEvery == 0 {
		reloadEvery = 10 * time.Second
	}
	var reload <-chan time.Time
	if reloadEvery > 0 {
		tk := time.NewTicker(reloadEvery)
		defer tk.Stop()
		reload = tk.C
	}
	for {
		wait := time.Hour
		if next, ok := s.o.CA.NextRetirement(); ok {
			wait = time.Until(next)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.rotated:
			t.Stop()
			continue
		case <-reload:
			t.Stop()
			changed, err := s.o.CA.Reload()
			if err != nil {
				s.o.Logger.Error("reading the CA directory again; keeping the roots in use", "err", err)
			}
			if changed {
				s.o.Logger.Info("CA roots changed in the CA directory (another controller replica rotated them); sending the new bundle",
					"active", s.o.CA.ActiveRootID())
				s.RootsChanged()
			}
			continue
		case <-t.C:
		}
		gone, err := s.o.CA.Retire()
		if err != nil {
			s.o.Logger.Error("retiring CA roots", "err", err)
		}
		for _, r := range gone {
			s.o.Logger.Info("CA root retired: every leaf it signed has expired", "root", r.ID)
		}
		if len(gone) > 0 {
			s.RootsChanged()
		}
	}
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
	if td := s.o.Workloads.TrustDomain(); id.TrustDomain != td {
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
	if creds, ok, err := s.joinForNode(req); ok {
		return creds, err // a node token (node.go)
	}
	var id spiffe.Identity
	var creds *meshapi.Credentials
	// Every check and the certificate itself come before the token is
	// spent, so a join that fails (a garbage CSR) leaves it unspent; the
	// certificate goes out only once the spend is on disk.
	_, err := s.o.Join.VerifyAnd(req.JoinToken, func(c ca.JoinClaims) error {
		if c.Instance != req.InstanceId {
			return status.Errorf(codes.PermissionDenied, "join token is for instance %q, not %q", c.Instance, req.InstanceId)
		}
		in, ok := s.o.Workloads.Lookup(c.Adapter, c.Instance)
		if !ok {
			return status.Errorf(codes.Unavailable, "instance %q is not in adapter %s's snapshot yet; retry shortly", c.Instance, c.Adapter)
		}
		if in.Service != c.Service || in.NS() != nsOr(c.Namespace) {
			return status.Errorf(codes.PermissionDenied, "join token names service %s/%s but instance %q runs %s/%s", nsOr(c.Namespace), c.Service, c.Instance, in.NS(), in.Service)
		}
		if err := s.checkBinding("join", c.Adapter, in); err != nil {
			return err
		}
		id = spiffe.Identity{TrustDomain: s.o.Workloads.TrustDomain(), Namespace: in.NS(), Service: in.Service}
		var err error
		creds, err = s.issue(req.CsrDer, id)
		return err
	})
	if err != nil {
		s.o.Logger.Warn("join refused", "instance", req.InstanceId, "err", err)
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		if errors.Is(err, ca.ErrSpend) {
			return nil, status.Error(codes.Unavailable, err.Error()+"; retry shortly")
		}
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	s.recordLeaf(req.InstanceId, creds)
	s.o.Logger.Info("sidecar joined", "instance", req.InstanceId, "identity", id.String())
	return creds, nil
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
	if c.Node != "" {
		return s.joinNodeWithCredential(req, c) // a node proxy's own credential (node.go)
	}
	if c.Instance != req.InstanceId {
		return refuse(codes.PermissionDenied, "the %s credential is for instance %q, not %q", req.CredentialAdapter, c.Instance, req.InstanceId)
	}
	in, ok := s.o.Workloads.Lookup(req.CredentialAdapter, req.InstanceId)
	if !ok {
		return refuse(codes.Unavailable, "instance %q is not in adapter %s's snapshot yet; retry shortly", req.InstanceId, req.CredentialAdapter)
	}
	if in.Service != c.Service || in.NS() != nsOr(c.Namespace) {
		return refuse(codes.PermissionDenied, "the %s credential proves service %s/%s but instance %q runs %s/%s",
			req.CredentialAdapter, nsOr(c.Namespace), c.Service, req.InstanceId, in.NS(), in.Service)
	}
	if err := s.checkBinding("join", req.CredentialAdapter, in); err != nil {
		s.o.Logger.Warn("join refused", "instance", req.InstanceId, "adapter", req.CredentialAdapter, "err", err)
		return nil, err
	}
	id := spiffe.Identity{TrustDomain: s.o.Workloads.TrustDomain(), Namespace: in.NS(), Service: in.Service}
	creds, err := s.issue(req.CsrDer, id)
	if err == nil {
		s.recordLeaf(req.InstanceId, creds)
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
	adapter, in, ok := s.o.Workloads.Instance(req.InstanceId)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "instance %q is not in the registry; a sidecar of an instance that is gone cannot renew", req.InstanceId)
	}
	if in.Service != id.Service || in.NS() != id.Namespace {
		return nil, status.Errorf(codes.PermissionDenied, "identity %s may not renew for instance %q of service %s", id, req.InstanceId, in.Service)
	}
	if err := s.checkBinding("renew", adapter, in); err != nil {
		s.o.Logger.Warn("renewal refused", "instance", req.InstanceId, "err", err)
		return nil, err
	}
	creds, err := s.issue(req.CsrDer, id)
	if err == nil {
		s.recordLeaf(req.InstanceId, creds)
	}
	return creds, err
}

// checkBinding asks the Binder whether in's workload may serve its
// service: nil to go on (with a warning in permissive mode), else a
// PermissionDenied status naming the workload, the service and the binding
// to add. op ("join", "renew") is for the log.
func (s *Server) checkBinding(op, adapter string, in model.Instance) error {
	if s.o.Binder == nil {
		return nil
	}
	err := s.o.Binder.Allowed(adapter, in)
	switch {
	case err == nil:
		return nil
	case status.Code(err) != codes.Unknown:
		return err // the binder chose the code (Unavailable before any policy)
	case errors.Is(err, ErrPermissive):
		s.o.Logger.Warn("issuing a certificate to an unbound workload because identity_binding is permissive; add the binding before switching to strict",
			"op", op, "instance", in.ID, "service", in.Service, "err", err)
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "instance %q (adapter %s): %v", in.ID, adapter, err)
}

// recordLeaf remembers which root signed the certificate just issued to an
// instance, for Status.
func (s *Server) recordLeaf(instance string, creds *meshapi.Credentials) {
	b, _ := pem.Decode(creds.CertChainPem)
	if b == nil {
		return
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaves[instance] = leafInfo{root: hex.EncodeToString(leaf.AuthorityKeyId), notAfter: leaf.NotAfter}
}

func (s *Server) issue(csr []byte, id spiffe.Identity) (*meshapi.Credentials, error) {
	// The controllers' own identity is what sidecars and the raft peers
	// check a controller by: no workload gets it, whatever its scheduler
	// calls it (a pod of namespace weft-system labelled weft-controller).
	if id.Namespace == ControllerNamespace && id.Service == ControllerService {
		return nil, status.Errorf(codes.PermissionDenied, "%s is the Weft controllers' own identity and is never issued to a workload: give the service another name or namespace", id)
	}
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
	st := &stream{instance: first.InstanceId, identity: id, wake: make(chan struct{}, 1), since: time.Now(), acked: first.AppliedVersion,
		health: first.Health, healthWake: make(chan struct{}, 1)}
	st.noteSelf(first)
	s.mu.Lock()
	if s.streams[st.instance] == nil {
		s.streams[st.instance] = map[*stream]struct{}{}
	}
	s.streams[st.instance][st] = struct{}{}
	s.raiseAboveLocked(st.instance, first.AppliedVersion)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams[st.instance], st)
		gone := false
		if len(s.streams[st.instance]) == 0 {
			delete(s.streams, st.instance)
			// Some stream of the instance reported since it last had none.
			gone = s.reported[st.instance]
			delete(s.reported, st.instance)
		}
		s.mu.Unlock()
		if gone {
			s.o.Health.StreamGone(st.instance)
		}
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
			st.noteSelf(req)
			if req.Health != nil {
				// Latest wins: a report the loop has not taken yet is
				// replaced.
				st.health = req.Health
				select {
				case st.healthWake <- struct{}{}:
				default:
				}
			}
			if req.RejectedVersion != 0 {
				st.rejected, st.errText = req.RejectedVersion, req.ErrorDetail
				s.o.Logger.Warn("sidecar rejected config", "instance", st.instance, "version", req.RejectedVersion, "error", req.ErrorDetail)
			}
			if req.AppliedVersion != 0 {
				st.acked = req.AppliedVersion
				if st.rejected != 0 && req.AppliedVersion > st.rejected {
					// A later version was applied: the rejection is history.
					st.rejected, st.errText = 0, ""
				}
			}
			st.mu.Unlock()
		}
	}()

	var sent uint64
	var lastReport time.Time
	var gap *time.Timer // set while a report waits for HealthReportGap
	defer func() {
		if gap != nil {
			gap.Stop()
		}
	}()
	var gapDone <-chan time.Time
	for {
		// A version older than the one the sidecar applied is not sent:
		// this replica has not applied the policy the sidecar holds yet
		// (raiseAboveLocked), and the sidecar would refuse it.
		if v, ok := s.current(st.instance); ok && v.version != sent && v.version >= st.appliedVersion() {
			if v.cfg.Service != id.Service || v.cfg.Namespace != id.Namespace {
				return status.Errorf(codes.PermissionDenied, "identity %s may not receive the configuration of instance %q (service %s/%s)", id, st.instance, v.cfg.Namespace, v.cfg.Service)
			}
			if err := send(srv, v.msg); err != nil {
				return err
			}
			sent = v.version
		}
		if gapDone == nil {
			wait, err := s.forwardHealth(st, &lastReport)
			if err != nil {
				return err
			}
			if wait > 0 {
				gap = time.NewTimer(wait)
				gapDone = gap.C
			}
		}
		select {
		case <-st.wake:
		case <-st.healthWake:
		case <-gapDone:
			gapDone = nil
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

// raiseAboveLocked keeps versions monotonic for a sidecar that comes from
// another controller replica (or from this one's previous run): when it
// has applied version applied, the counter moves past it, and an
// instance's configuration whose version is not above it is stamped again
// with a new one (same content), so the sidecar never sees a version go
// backwards. Called with s.mu held.
//
// Only within one policy: a configuration compiled from an older policy
// than the one the sidecar applied (this replica has not applied the
// newest yet) keeps its version, which the stream does not send (it is
// older than what the sidecar holds); once this replica compiles the
// newer policy, the version it gives is above the sidecar's.
func (s *Server) raiseAboveLocked(instance string, applied uint64) {
	if applied == 0 {
		return
	}
	switch {
	case applied&replicated == 0:
		s.next = max(s.next, applied)
	default:
		s.count = max(s.count, applied&countMask)
	}
	v, ok := s.configs[instance]
	if !ok || v.version > applied || policyIndexOf(v.version) < policyIndexOf(applied) {
		return
	}
	version := s.stampLocked()
	_, enc := digest(v.cfg, nil)
	s.configs[instance] = versioned{version: version, cfg: v.cfg, sum: v.sum, msg: stamp(frame(enc), version)}
	for other := range s.streams[instance] {
		select {
		case other.wake <- struct{}{}:
		default:
		}
	}
}

// forwardHealth hands the stream's pending health report to
// Options.Health, for the stream's own instance, once the registry holds
// that instance with the stream's identity. While it does not (a
// controller that has just restarted), the report waits for the stream's
// next wake (its first configuration comes once the instance is there);
// an instance of another service than the identity's ends the stream.
//
// Reports are handed over at most one per HealthReportGap (last is when
// the stream last handed one over): forwardHealth returns how long a
// waiting report must wait still.
func (s *Server) forwardHealth(st *stream, last *time.Time) (time.Duration, error) {
	st.mu.Lock()
	h := st.health
	st.mu.Unlock()
	if h == nil || s.o.Health == nil {
		return 0, nil
	}
	if wait := HealthReportGap - time.Since(*last); !last.IsZero() && wait > 0 {
		return wait, nil
	}
	_, in, ok := s.o.Workloads.Instance(st.instance)
	if !ok {
		return 0, nil // kept until the stream's next wake
	}
	if in.Service != st.identity.Service || in.NS() != st.identity.Namespace {
		s.o.Logger.Warn("refusing a health report: the identity does not serve the instance its stream names", "identity", st.identity.String(), "instance", st.instance, "service", in.Service)
		return 0, status.Errorf(codes.PermissionDenied, "identity %s may not report the health of instance %q (service %s/%s)", st.identity, st.instance, in.NS(), in.Service)
	}
	st.mu.Lock()
	h = st.health // the latest, if another came meanwhile
	st.health = nil
	st.mu.Unlock()
	*last = time.Now()
	s.mu.Lock()
	s.reported[st.instance] = true
	s.mu.Unlock()
	s.o.Health.ReportHealth(st.instance, h.GetHealthy(), boundReason(h.GetReason()))
	return 0, nil
}

// boundReason makes a sidecar's reason safe to keep and show: valid
// UTF-8, no control characters, at most MaxReasonBytes.
func boundReason(r string) string {
	if len(r) > 4*MaxReasonBytes {
		r = r[:4*MaxReasonBytes]
	}
	r = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return ' '
		}
		return c
	}, strings.ToValidUTF8(r, "?"))
	if len(r) <= MaxReasonBytes {
		return r
	}
	cut := MaxReasonBytes
	for cut > 0 && !utf8.RuneStart(r[cut]) {
		cut--
	}
	return r[:cut]
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
	// LeafRoot is the root (ca.RootID) of the last certificate this
	// controller issued to the instance, and LeafExpires its expiry; empty
	// when another replica (or an earlier run) issued it.
	LeafRoot    string `json:"leaf_root,omitempty"`
	LeafExpires string `json:"leaf_expires,omitempty"`
	// What the sidecar said of itself on its stream (empty or zero for a
	// sidecar that does not say): its weft-proxy version, its clock minus
	// the controller's in milliseconds (network delay included), and the
	// expiry of the certificate it holds.
	ProxyVersion string `json:"proxy_version,omitempty"`
	ClockSkewMs  int64  `json:"clock_skew_ms,omitempty"`
	CertExpires  string `json:"cert_expires,omitempty"`
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
				ConnectedSince: st.since.UTC().Format(time.RFC3339Nano),
				ProxyVersion:   st.proxyVersion, ClockSkewMs: st.skew.Milliseconds(),
			})
			if st.certNotAfter > 0 {
				out[len(out)-1].CertExpires = time.Unix(st.certNotAfter, 0).UTC().Format(time.RFC3339)
			}
			if l, ok := s.leaves[id]; ok {
				out[len(out)-1].LeafRoot, out[len(out)-1].LeafExpires = l.root, l.notAfter.UTC().Format(time.RFC3339)
			}
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
