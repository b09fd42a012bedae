package control

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/creds"
	"github.com/weftmesh/weft/core/spiffe"
)

// The controller's identity, when its certificate carries a SPIFFE ID.
const (
	controllerNamespace = "weft-system"
	controllerService   = "weft-controller"
)

// Options configure a Client.
type Options struct {
	// InstanceID is the instance this sidecar serves.
	InstanceID string
	// Controllers are host:port addresses of the controller replicas (a
	// DNS name stands for every address it resolves to), tried in an
	// order of this sidecar's own drawn at random (Replicas).
	Controllers []string
	// TrustBundle verifies the controllers' server certificates, with
	// normal hostname checks against the host part of each address.
	TrustBundle *x509.CertPool
	// JoinToken is the single-use token exchanged for the first
	// certificate. It may be empty when DataDir holds a valid certificate.
	JoinToken string
	// CredentialAdapter, when set, makes the sidecar join with a credential
	// its scheduler gave it (a Nomad workload identity, a Kubernetes
	// service-account token) instead of a join token; the named adapter
	// checks it. Credential reads the credential, afresh for every join
	// (projected tokens rotate).
	CredentialAdapter string
	Credential        func() (string, error)
	// DataDir, when set, keeps the certificate, key, roots and the last
	// applied config across restarts: a restarted sidecar serves at once
	// and needs no new join token while its certificate is valid.
	DataDir string
	// MinBackoff and MaxBackoff bound the reconnect delay once every
	// replica failed, which doubles from one to the other with jitter
	// (core/backoff). Defaults: 200ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// FailoverSpread bounds the random wait before the next replica is
	// tried after the one in use failed. Default: DefaultFailoverSpread.
	FailoverSpread time.Duration
	// Resolve looks up a DNS name among Controllers. Default:
	// net.DefaultResolver.LookupHost.
	Resolve func(ctx context.Context, host string) ([]string, error)
	// CallTimeout bounds Join and Renew calls. Default: 10s.
	CallTimeout time.Duration
	// Logger receives the client's events. Default: slog.Default().
	Logger *slog.Logger
	// Beside, when set, runs beside every config stream, on the same mTLS
	// connection to the same controller, until ctx ends with the stream
	// (the sidecar's Tap stream: core/proxy.Proxy.RunTap).
	Beside func(ctx context.Context, cc grpc.ClientConnInterface, instanceID string)
}

// Watcher is what a Client delivers to: the data plane that applies each
// configuration and uses each set of credentials. A core/proxy.Proxy is
// one; a proxy serving many instances gives each instance's client its own.
type Watcher interface {
	// Apply makes cfg, as version, the configuration; an error rejects it
	// (a NACK with the error's text) and must leave the previous one in
	// force.
	Apply(version uint64, cfg *meshapi.ProxyConfig) error
	// SetCredentials swaps the certificate and roots in use.
	SetCredentials(c *creds.Credentials)
}

// Client connects a Watcher to the controllers: it joins the mesh for a
// certificate, streams configuration into the watcher, acknowledging or
// rejecting every version, and renews the certificate at half its
// lifetime. While no controller answers the watcher keeps serving with
// what it has.
//
// Root rotation: every configuration carries the mesh's trust bundle and
// the ID of the root that signs new certificates (ProxyConfig.trust). The
// Client trusts the bundle's roots before it applies the rest of the
// configuration, and renews at once when its certificate is from another
// root than the active one (applyTrust), so a rotation reaches every
// sidecar within a config push and one Renew, not at half-life.
type Client struct {
	w        Watcher
	o        Options
	log      *slog.Logger
	replicas *Replicas

	held    atomic.Pointer[creds.Credentials] // as last given to w
	applied atomic.Uint64                     // the version w applied last

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // mTLS connections by address

	// credsMu serializes changes of the proxy's credentials (renewals,
	// new trust bundles), each made from the current ones.
	credsMu  sync.Mutex
	renewNow chan struct{} // wakes renewLoop before half-life

	// health is the latest health report (ReportHealth); healthWake wakes
	// the live stream's sender.
	health     atomic.Pointer[meshapi.HealthReport]
	healthWake chan struct{}

	reports reportStream // SendStats (report.go)
}

// New returns a client that will drive w. Call Run to start it.
func New(w Watcher, o Options) (*Client, error) {
	if o.InstanceID == "" {
		return nil, errors.New("creating the controller client: no instance ID; pass --instance")
	}
	if len(o.Controllers) == 0 {
		return nil, errors.New("creating the controller client: no controller address; pass --controller host:port")
	}
	if o.TrustBundle == nil {
		return nil, errors.New("creating the controller client: no trust bundle to verify the controller with; pass --trust-bundle")
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	replicas, err := NewReplicas(o.Controllers, ReplicaOptions{MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff,
		Spread: o.FailoverSpread, Resolve: o.Resolve, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("creating the controller client: %w", err)
	}
	return &Client{w: w, o: o, log: o.Logger, replicas: replicas, conns: make(map[string]*grpc.ClientConn), renewNow: make(chan struct{}, 1),
		healthWake: make(chan struct{}, 1)}, nil
}

// Run gets credentials (from DataDir or by joining), then streams
// configuration and renews the certificate until ctx ends. It returns nil
// when ctx ends and an error only when the sidecar cannot join the mesh at
// all (for instance, its join token was refused).
func (c *Client) Run(ctx context.Context) error {
	defer c.closeConns()
	cr := c.loadCredentials()
	saved := cr != nil
	if !saved {
		var err error
		if cr, err = c.join(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.saveCredentials(cr)
	}
	c.setCredentials(cr)
	c.log.Info("holding certificate", "id", cr.ID.String(), "until", cr.NotAfter().Format(time.RFC3339))
	if saved {
		c.loadConfig()
	}

	var wg sync.WaitGroup
	wg.Go(func() { c.renewLoop(ctx) })
	c.streamLoop(ctx)
	wg.Wait()
	return nil
}

// setCredentials gives cr to the watcher and keeps it as the current
// credentials.
func (c *Client) setCredentials(cr *creds.Credentials) {
	c.held.Store(cr)
	c.w.SetCredentials(cr)
}

// Credentials returns the credentials the client holds, or nil before it
// has any.
func (c *Client) Credentials() *creds.Credentials { return c.held.Load() }

// getClientCertificate presents the current certificate to a controller.
func (c *Client) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cr := c.held.Load()
	if cr == nil {
		// An empty certificate sends none; Join needs none.
		return &tls.Certificate{}, nil
	}
	return &cr.Cert, nil
}

// controller returns the replica to talk to now (Replicas).
func (c *Client) controller(ctx context.Context) Target {
	return c.replicas.Current(ctx)
}

// failed says t failed: the client moves to the next replica, and
// returns the wait before the next attempt.
func (c *Client) failed(t Target) time.Duration {
	return c.replicas.Failed(t)
}

// dropConn closes the connection to t after its config stream failed, so
// that a later attempt dials afresh rather than wait out gRPC's own
// reconnect backoff. (A failed Join or Renew leaves it: the config stream
// on it may be well.)
func (c *Client) dropConn(t Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[t.Addr]; cc != nil {
		cc.Close()
		delete(c.conns, t.Addr)
	}
}

// Controller returns the controller replica the client talks to now (its
// address as dialled), for the sidecar's admin endpoints and tests.
func (c *Client) Controller() string {
	return c.replicas.Peek().Addr
}

// controllerTLS verifies the controller against the trust bundle (or the
// mesh roots, after a rotation) with normal hostname checks, and presents
// the sidecar's certificate once it has one.
func (c *Client) controllerTLS(t Target) *tls.Config {
	host := t.Name
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           host,
		GetClientCertificate: c.getClientCertificate,
		// The roots change at run time, so VerifyConnection does the full
		// check, hostname included, against the current ones.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verifyController(cs.PeerCertificates, host)
		},
	}
}

func (c *Client) verifyController(certs []*x509.Certificate, host string) error {
	if len(certs) == 0 {
		return errors.New("the controller presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	opts := x509.VerifyOptions{DNSName: host, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	opts.Roots = c.o.TrustBundle
	_, err := certs[0].Verify(opts)
	if err != nil {
		if cr := c.held.Load(); cr != nil {
			opts.Roots = cr.Roots
			_, err = certs[0].Verify(opts)
		}
	}
	if err != nil {
		return fmt.Errorf("verifying the controller's certificate for %s against the trust bundle: %w", host, err)
	}
	if id, err := spiffe.FromCert(certs[0]); err == nil {
		if id.Namespace != controllerNamespace || id.Service != controllerService {
			return fmt.Errorf("the server at %s is %s, not a Weft controller", host, id)
		}
	}
	return nil
}

func (c *Client) dial(t Target) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient("passthrough:///"+t.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(c.controllerTLS(t))),
		grpc.WithNoProxy(),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to controller %s: %w", t.Addr, err)
	}
	return cc, nil
}

// conn returns the mTLS connection to t. It is only made once the
// proxy holds a certificate, so its handshakes present it.
func (c *Client) conn(t Target) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[t.Addr]; cc != nil {
		return cc, nil
	}
	cc, err := c.dial(t)
	if err != nil {
		return nil, err
	}
	c.conns[t.Addr] = cc
	return cc, nil
}

func (c *Client) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, cc := range c.conns {
		cc.Close()
		delete(c.conns, a)
	}
}

// refused reports whether the controller said no for good: retrying the
// same request cannot help.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.AlreadyExists:
		return true
	}
	return false
}

// join exchanges the join token and a CSR for credentials, trying the
// controllers in turn until one answers.
func (c *Client) join(ctx context.Context) (*creds.Credentials, error) {
	if c.o.JoinToken == "" && c.o.CredentialAdapter == "" {
		return nil, errors.New("joining the mesh: no join token, no scheduler credential and no saved certificate; start the sidecar with WEFT_JOIN_TOKEN set (the launcher issues one per start) or with --credential-adapter")
	}
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	for {
		t := c.controller(ctx)
		addr := t.Addr
		cr, err := c.joinOnce(ctx, t, key, csr)
		if err == nil {
			c.replicas.Succeeded(t)
			return cr, nil
		}
		if refused(err) && c.o.CredentialAdapter != "" {
			return nil, fmt.Errorf("joining the mesh as instance %q: controller %s refused the %s credential: %s",
				c.o.InstanceID, addr, c.o.CredentialAdapter, status.Convert(err).Message())
		}
		if status.Code(err) == codes.PermissionDenied {
			// The token was good, but the instance may not have the
			// identity (a binding, another instance's token): a fresh
			// token would not help.
			return nil, fmt.Errorf("joining the mesh as instance %q: controller %s refused to admit it: %s",
				c.o.InstanceID, addr, status.Convert(err).Message())
		}
		if refused(err) {
			return nil, fmt.Errorf("joining the mesh as instance %q: controller %s refused the join token: %s. "+
				"A join token works once and expires soon: if this sidecar was restarted, start it with a fresh WEFT_JOIN_TOKEN, "+
				"or keep its --data-dir so it can reuse its certificate", c.o.InstanceID, addr, status.Convert(err).Message())
		}
		d := c.failed(t)
		c.log.Warn("joining the mesh via controller "+addr+"; retrying", "err", err, "next", c.controller(ctx).Addr, "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

func (c *Client) joinOnce(ctx context.Context, t Target, key *ecdsa.PrivateKey, csr []byte) (*creds.Credentials, error) {
	// A connection of its own: the mTLS ones must not reuse a handshake
	// made before the sidecar had a certificate.
	cc, err := c.dial(t)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, c.o.CallTimeout)
	defer cancel()
	req := &meshapi.JoinRequest{InstanceId: c.o.InstanceID, JoinToken: c.o.JoinToken, CsrDer: csr}
	if c.o.CredentialAdapter != "" {
		cred, err := c.o.Credential()
		if err != nil {
			return nil, fmt.Errorf("reading the %s credential: %w", c.o.CredentialAdapter, err)
		}
		req.JoinToken, req.CredentialAdapter, req.Credential = "", c.o.CredentialAdapter, cred
	}
	resp, err := meshapi.NewMeshClient(cc).Join(cctx, req)
	if err != nil {
		return nil, err
	}
	return credentialsFrom(resp, key)
}

// renewLoop renews the certificate at half its lifetime, or at once when
// applyTrust finds it is not from the active root, retrying with backoff
// until a controller answers, for as long as ctx lasts.
func (c *Client) renewLoop(ctx context.Context) {
	for {
		cur := c.held.Load()
		t := time.NewTimer(time.Until(cur.RenewAt()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.renewNow:
		case <-t.C:
		}
		t.Stop()
		cr, err := c.renew(ctx)
		if err != nil {
			return // ctx ended
		}
		c.credsMu.Lock()
		c.setCredentials(cr)
		c.saveCredentials(cr)
		c.credsMu.Unlock()
		c.log.Info("renewed certificate", "id", cr.ID.String(), "until", cr.NotAfter().Format(time.RFC3339), "root", leafRootID(cr))
	}
}

// applyTrust takes the trust bundle that came with a configuration: the
// proxy trusts its roots from now on (before anything else changes, so
// peers renewed from a new root are accepted), and if the proxy's own
// certificate is not from the active root it renews at once, not at
// half-life. Its new certificate carries the new root cross-signed by the
// old one, so peers that still trust only the old root accept it too.
func (c *Client) applyTrust(tb *meshapi.TrustBundle) {
	if len(tb.GetRootsPem()) == 0 {
		return // a controller without rotation: the roots come with Join and Renew
	}
	c.credsMu.Lock()
	cur := c.held.Load()
	if cur == nil {
		c.credsMu.Unlock()
		return
	}
	if !bytes.Equal(cur.RootsPEM(), tb.GetRootsPem()) {
		next, err := creds.New(cur.Cert, tb.GetRootsPem())
		if err != nil {
			c.credsMu.Unlock()
			c.log.Warn("ignoring the trust bundle sent with the config; keeping the current roots", "err", err)
			return
		}
		c.setCredentials(next)
		c.saveCredentials(next)
		cur = next
		c.log.Info("trusting the roots from the controller", "roots", len(cur.RootCerts()), "active_root", tb.GetActiveRootId())
	}
	c.credsMu.Unlock()
	active := tb.GetActiveRootId()
	if active == "" || leafRootID(cur) == active {
		return
	}
	c.log.Info("the certificate is from another root than the one that now signs: renewing now", "root", leafRootID(cur), "active_root", active)
	select {
	case c.renewNow <- struct{}{}:
	default:
	}
}

// leafRootID names the root in the bundle that signed the proxy's leaf
// (spiffe.RootID), or "unknown".
func leafRootID(cr *creds.Credentials) string {
	for _, r := range cr.RootCerts() {
		if cr.Cert.Leaf.CheckSignatureFrom(r) == nil {
			return spiffe.RootID(r)
		}
	}
	// Signed by an intermediate (a cross-signed root): name the root it
	// stands for.
	for _, der := range cr.Cert.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err == nil && cr.Cert.Leaf.CheckSignatureFrom(ic) == nil {
			return spiffe.RootID(ic)
		}
	}
	return "unknown"
}

func (c *Client) renew(ctx context.Context) (*creds.Credentials, error) {
	for {
		key, csr, err := newKeyAndCSR()
		if err != nil {
			return nil, err
		}
		t := c.controller(ctx)
		addr := t.Addr
		cr, err := c.renewOnce(ctx, t, key, csr)
		if err == nil {
			c.replicas.Succeeded(t)
			return cr, nil
		}
		d := c.failed(t)
		note := ""
		if na := c.held.Load().NotAfter(); time.Now().After(na) {
			note = fmt.Sprintf(" (the certificate expired at %s; the controller may refuse it: still trying)", na.Format(time.RFC3339))
		}
		c.log.Warn("renewing certificate via controller "+addr+note+"; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

func (c *Client) renewOnce(ctx context.Context, t Target, key *ecdsa.PrivateKey, csr []byte) (*creds.Credentials, error) {
	cc, err := c.conn(t)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.o.CallTimeout)
	defer cancel()
	resp, err := meshapi.NewMeshClient(cc).Renew(cctx, &meshapi.RenewRequest{InstanceId: c.o.InstanceID, CsrDer: csr})
	if err != nil {
		return nil, err
	}
	return credentialsFrom(resp, key)
}

// streamLoop keeps a config stream open to some controller replica until
// ctx ends, moving to the next replica after each failure (Replicas: soon
// after a replica that served dies, backing off once every replica
// failed).
func (c *Client) streamLoop(ctx context.Context) {
	for {
		t := c.controller(ctx)
		got, err := c.streamOnce(ctx, t)
		if ctx.Err() != nil {
			return
		}
		if got {
			c.replicas.Succeeded(t)
		}
		c.dropConn(t)
		d := c.failed(t)
		c.log.Warn("config stream from controller "+t.Addr+" ended; keeping the last config, reconnecting", "err", err,
			"next", c.controller(ctx).Addr, "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return
		}
	}
}

// streamOnce subscribes and applies every update until the stream breaks.
// got reports whether any update arrived.
func (c *Client) streamOnce(ctx context.Context, t Target) (got bool, err error) {
	cc, err := c.conn(t)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := meshapi.NewMeshClient(cc).StreamConfig(sctx)
	if err != nil {
		return false, fmt.Errorf("opening the config stream: %w", err)
	}
	applied := c.applied.Load()
	// The latest health report rides on the subscription, so a controller
	// that restarted (or another replica) learns it at once.
	sentHealth := c.health.Load()
	if err := stream.Send(c.stamp(&meshapi.ConfigRequest{InstanceId: c.o.InstanceID, AppliedVersion: applied, Health: sentHealth})); err != nil {
		return false, fmt.Errorf("subscribing: %w", streamError(stream, err))
	}
	// Sends are serialized: ACKs from this loop, health reports from
	// sendHealth.
	var sendMu sync.Mutex
	healthDone := make(chan struct{})
	defer func() { cancel(); <-healthDone }()
	go func() {
		defer close(healthDone)
		c.sendHealth(sctx, stream, &sendMu, sentHealth)
	}()
	if c.o.Beside != nil {
		besideDone := make(chan struct{})
		defer func() { cancel(); <-besideDone }()
		go func() {
			defer close(besideDone)
			c.o.Beside(sctx, cc, c.o.InstanceID)
		}()
	}
	for {
		u, err := stream.Recv()
		if err != nil {
			return got, fmt.Errorf("receiving config: %w", err)
		}
		got = true
		ack := c.take(t, u)
		sendMu.Lock()
		err = stream.Send(c.stamp(ack))
		sendMu.Unlock()
		if err != nil {
			return got, fmt.Errorf("acknowledging version %d: %w", u.GetVersion(), streamError(stream, err))
		}
	}
}

// take applies u, from replica t, and returns the ACK or NACK to send. A
// version below the one applied last is refused whole, its trust bundle
// included: another replica (or this one before a restart) gave a later
// one, so this replica is behind, and the last good config stays.
func (c *Client) take(t Target, u *meshapi.ConfigUpdate) *meshapi.ConfigRequest {
	ack := &meshapi.ConfigRequest{InstanceId: c.o.InstanceID}
	applied := c.applied.Load()
	if u.GetVersion() < applied {
		err := fmt.Errorf("config version %d from controller %s is older than version %d, which this sidecar applied already "+
			"(from another controller replica, or before a restart): keeping %d; the controller replicas disagree on versions: "+
			"check with weft status on each that they share their state", u.GetVersion(), t.Addr, applied, applied)
		c.log.Warn("rejected config version", "version", u.GetVersion(), "err", err)
		ack.AppliedVersion, ack.RejectedVersion, ack.ErrorDetail = applied, u.GetVersion(), err.Error()
		return ack
	}
	c.applyTrust(u.GetConfig().GetTrust())
	if err := c.w.Apply(u.GetVersion(), u.GetConfig()); err != nil {
		c.log.Warn("rejected config version", "version", u.GetVersion(), "err", err)
		ack.AppliedVersion = applied
		ack.RejectedVersion = u.GetVersion()
		ack.ErrorDetail = err.Error()
		return ack
	}
	c.log.Info("applied config version", "version", u.GetVersion(), "endpoints", endpointCounts(u.GetConfig()), "controller", t.Addr)
	ack.AppliedVersion = u.GetVersion()
	c.applied.Store(u.GetVersion())
	c.saveConfig(u)
	return ack
}

// stamp sets what `weft check` reads of the sidecar on a request: its
// build's version, its clock now, and its certificate's expiry.
func (c *Client) stamp(r *meshapi.ConfigRequest) *meshapi.ConfigRequest {
	r.ProxyVersion = reportedVersion()
	r.SentUnixMs = time.Now().Add(reportedSkew()).UnixMilli()
	if cr := c.held.Load(); cr != nil {
		r.CertNotAfterUnix = cr.NotAfter().Unix()
	}
	return r
}

// ReportHealth hands the sidecar's latest view of its app's health (its
// active checks) to the controller: sent at once on the live config
// stream, and again with the subscription after every (re)connect, so a
// controller that restarted learns it. It never blocks: a report the
// stream has not sent yet is replaced by a later one (latest wins). Until
// the first call the sidecar reports nothing and the controller goes by
// the scheduler's health alone.
func (c *Client) ReportHealth(healthy bool, reason string) {
	c.health.Store(&meshapi.HealthReport{Healthy: healthy, Reason: reason, ObservedUnixMs: time.Now().UnixMilli()})
	select {
	case c.healthWake <- struct{}{}:
	default:
	}
}

// sendHealth sends each new health report on stream until ctx ends; sent
// is the one the subscription carried.
func (c *Client) sendHealth(ctx context.Context, stream meshapi.Mesh_StreamConfigClient, mu *sync.Mutex, sent *meshapi.HealthReport) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.healthWake:
		}
		h := c.health.Load()
		if h == sent {
			continue
		}
		mu.Lock()
		err := stream.Send(&meshapi.ConfigRequest{InstanceId: c.o.InstanceID, Health: h})
		mu.Unlock()
		if err != nil {
			// The stream is broken: the receive loop ends it, and the
			// next subscription carries the latest report.
			return
		}
		sent = h
	}
}

// streamError turns the io.EOF a send gets on a stream the server ended
// into the status the server ended it with.
func streamError(s meshapi.Mesh_StreamConfigClient, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	if _, rerr := s.Recv(); rerr != nil {
		return rerr
	}
	return err
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// endpointCounts says how many endpoints each upstream of cfg has,
// "api=2 web=1", for the log line of each applied version.
func endpointCounts(cfg *meshapi.ProxyConfig) string {
	parts := make([]string, 0, len(cfg.GetUpstreams()))
	for _, u := range cfg.GetUpstreams() {
		parts = append(parts, fmt.Sprintf("%s=%d", u.GetName(), len(u.GetEndpoints())))
	}
	return strings.Join(parts, " ")
}
