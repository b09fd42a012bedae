package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/budget"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/relay"
	"github.com/weftmesh/weft/core/spiffe"
	"github.com/weftmesh/weft/core/state"
	"github.com/weftmesh/weft/core/telemetry"
)

// raftFlags make a controller one replica of a cluster whose CA and spent
// join tokens are replicated on hashicorp/raft (core/state).
type raftFlags struct {
	dir, addr, keyFile string
	expect             int
	join               []string
}

func (r *raftFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&r.dir, "raft-dir", "", "run as a replica of a controller cluster: the directory of its raft log, snapshots and node ID (empty: a single controller, as without raft)")
	fl.StringVar(&r.addr, "raft-addr", "", "HOST:PORT this replica listens on for its peers, and that they dial (mutual TLS with the controllers' certificates); required with --raft-dir")
	fl.StringVar(&r.keyFile, "state-key-file", "", "file of the 32-byte key (base64) that seals the CA's keys in the replicated state; the same on every replica; required with --raft-dir (make one: head -c 32 /dev/urandom | base64 > state.key)")
	fl.IntVar(&r.expect, "bootstrap-expect", 0, "form a new cluster once this many replicas (this one and those --join names) know one another, like Nomad's and Consul's servers: 3 or 5")
	fl.StringArrayVar(&r.join, "join", nil, "raft address of a peer (repeatable): to form the cluster with (with --bootstrap-expect) or to join a running one")
}

// replica is the controller's raft replica and what it is wired to.
type replica struct {
	f         raftFlags
	caDir     string // DATA_DIR/ca: the bundle for CLI clients
	kept      bool   // the CA came from the state kept at the last run
	hosts     []string
	ownCert   atomic.Pointer[tls.Certificate]
	key       []byte
	node      *state.Node
	authority *ca.CA
	log       *slog.Logger
	id        spiffe.Identity
	srv       atomic.Pointer[meshserver.Server]
	serving   atomic.Pointer[tls.Config]
	policy    *replicatedPolicy // policy_source.go
}

// prepare checks the raft flags and reads the state key. nil: a single
// controller.
func (r raftFlags) prepare(dataDir string, log *slog.Logger) (*replica, error) {
	if r.dir == "" {
		if r.addr != "" || r.keyFile != "" || r.expect != 0 || len(r.join) > 0 {
			return nil, errors.New("--raft-addr, --state-key-file, --bootstrap-expect and --join make the controller a replica: they need --raft-dir")
		}
		return nil, nil
	}
	if r.addr == "" || r.keyFile == "" {
		return nil, errors.New("--raft-dir needs --raft-addr (where peers reach this replica) and --state-key-file (the key sealing the CA in the replicated state, the same on every replica)")
	}
	if r.expect < 0 {
		return nil, fmt.Errorf("--bootstrap-expect %d: want the number of replicas, 3 or 5", r.expect)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "raft.db")); errors.Is(err, os.ErrNotExist) && r.expect == 0 && len(r.join) == 0 {
		return nil, errors.New("--raft-dir holds no cluster yet: give --bootstrap-expect N (and --join for each peer) to form one, or --join ADDR to join a running one")
	}
	key, err := readStateKey(r.keyFile) // statekey.go
	if err != nil {
		return nil, err
	}
	return &replica{f: r, key: key, caDir: filepath.Join(dataDir, "ca"), log: log}, nil
}

// loadCA is the replica's CA before it hears from the cluster: the state
// it kept at its last run (sealed in --raft-dir), else the CA of
// DATA_DIR/ca if there is one (a single controller becoming the first
// replica), else a new one in memory. The last two are candidates: the
// cluster's first leader makes its own the cluster's, and every other
// replica takes that one (onCA).
func (p *replica) loadCA() (*ca.CA, error) {
	st, ok, err := state.LoadCachedCA(p.f.dir, p.key)
	switch {
	case err != nil:
		return nil, err
	case ok:
		p.kept = true
		p.authority, err = ca.NewFromState(st)
		if err == nil {
			p.log.Info("raft: serving with the cluster's CA as this replica kept it", "active_root", p.authority.ActiveRootID())
		}
	default:
		if _, statErr := os.Stat(filepath.Join(p.caDir, "ca.key")); statErr == nil {
			p.authority, err = ca.LoadOrCreate(p.caDir)
		} else {
			p.authority, err = ca.New()
		}
	}
	return p.authority, err
}

// open starts the replica; its peers authenticate it by the controller's
// own certificate (setServing hands it over once issued).
func (p *replica) open(ctx context.Context, authority *ca.CA, trustDomain string, hosts []string, log *slog.Logger) error {
	id := spiffe.Identity{TrustDomain: trustDomain, Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService}
	p.id, p.hosts = id, hosts
	node, err := state.Open(state.Options{
		Dir: p.f.dir, Addr: p.f.addr, BootstrapExpect: p.f.expect, Join: p.f.join, Key: p.key,
		TLS:     state.PeerTLS{Certificate: p.certificate, Identity: id.URL().String()},
		LocalCA: authority.State, OnCA: p.onCA, OnPolicy: p.onPolicy, Logger: log,
	})
	if err != nil {
		return err
	}
	p.node = node
	authority.SetCommit(node.CommitCA)
	if p.kept {
		// Serve at once, even without a quorum: sidecars renew.
		p.writeBundle()
		return nil
	}
	// A new replica serves once it holds the cluster's CA: the join keys
	// its adapters get, and the bundle its sidecars trust, are that CA's.
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := start
	for !node.HasCA() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Since(last) > 10*time.Second {
			log.Info("raft: waiting for the cluster to form and hold a CA before serving", "waited", time.Since(start).Round(time.Second).String(), "status", node.Status().Problem)
			last = time.Now()
		}
	}
	log.Info("raft: holding the cluster's CA", "active_root", authority.ActiveRootID(), "waited", time.Since(start).Round(time.Millisecond).String())
	p.writeBundle()
	return nil
}

// writeBundle writes the cluster's trust bundle to DATA_DIR/ca/ca.crt,
// where the CLI (and bootstrap scripts) read it. A replica keeps the CA's
// keys only sealed in the replicated state: the key files of a single
// controller that became a replica are moved aside (ca.key.pre-raft...)
// once the cluster holds its CA.
func (p *replica) writeBundle() {
	if err := os.MkdirAll(p.caDir, 0o700); err != nil {
		p.log.Warn("raft: writing the trust bundle for CLI clients", "err", err)
		return
	}
	for _, f := range []string{"ca.key", "rotation.json", "join.secret"} {
		old := filepath.Join(p.caDir, f)
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, old+".pre-raft"); err != nil {
				p.log.Warn("raft: moving aside a CA file of the single controller", "file", old, "err", err)
				continue
			}
			p.log.Info("raft: the CA's keys live sealed in the replicated state now; moved aside", "file", old, "to", old+".pre-raft")
		}
	}
	path := filepath.Join(p.caDir, "ca.crt")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, p.authority.RootsPEM(), 0o644); err == nil {
		err = os.Rename(tmp, path)
		if err != nil {
			p.log.Warn("raft: writing the trust bundle for CLI clients", "err", err)
		}
	}
}

// certificate is the controller's own certificate, as its APIs serve it;
// before they do (a replica waiting for the cluster's CA), one issued
// from the CA it holds.
func (p *replica) certificate() (*tls.Certificate, error) {
	if cfg := p.serving.Load(); cfg != nil {
		return cfg.GetCertificate(&tls.ClientHelloInfo{})
	}
	if c := p.ownCert.Load(); c != nil && time.Now().Before(c.Leaf.NotAfter) {
		return c, nil
	}
	c, err := p.authority.ServerCertificate(p.id, p.hosts)
	if err != nil {
		return nil, err
	}
	p.ownCert.Store(&c)
	return &c, nil
}

// onCA installs the cluster's CA state, and sends sidecars the new bundle
// when the roots changed.
func (p *replica) onCA(st ca.State) {
	changed, err := p.authority.Install(st)
	if err != nil {
		p.log.Error("raft: the cluster's CA state does not add up; keeping the roots in use", "err", err)
		return
	}
	if !changed {
		return
	}
	p.log.Info("raft: the cluster's CA changed; sending sidecars the new bundle", "active_root", p.authority.ActiveRootID())
	p.ownCert.Store(nil)
	if p.node != nil {
		p.writeBundle()
	}
	if srv := p.srv.Load(); srv != nil {
		srv.RootsChanged()
	}
}

// share returns the sidecars' report sink and budget pool for the
// mesh server: for a replica, a core/relay that records here and passes
// them on to every other replica (and takes theirs), and its Run; else the
// collector and a pool of this controller alone.
func (p *replica) share(collector *telemetry.Collector) (meshserver.Stats, *budget.Pool, func(context.Context)) {
	if p == nil || p.node == nil {
		return collector, budget.NewPool(budget.Options{}), func(context.Context) {}
	}
	var rel *relay.Relay
	pool := budget.NewPool(budget.Options{Granted: func(k budget.Key, instance string, n float64, requests uint64, window time.Duration, at time.Time) {
		rel.Granted(k, instance, n, requests, window, at)
	}})
	rel = relay.New(relay.Options{Collector: collector, Pool: pool, Send: p.node, MaxMessage: state.MaxPeerMessage, Logger: p.log})
	p.node.HandlePeer(relay.Kind, rel.Receive)
	return rel, pool, rel.Run
}

// taps is the admin API's tap: on a replica, a core/relay.Taps that opens
// each tap on every peer replica too (their sidecars' requests come back
// over the peers' connections); else the mesh server's own taps.
func (p *replica) taps(srv *meshserver.Server) *relay.Taps {
	if p == nil || p.node == nil {
		return relay.NewTaps(relay.TapOptions{Local: srv})
	}
	taps := relay.NewTaps(relay.TapOptions{Local: srv, Peers: p.node, MaxMessage: state.MaxPeerMessage, Logger: p.log})
	p.node.HandlePeer(relay.TapKind, taps.Receive)
	return taps
}

func (p *replica) serve(srv *meshserver.Server) {
	if p != nil {
		p.srv.Store(srv)
	}
}

func (p *replica) setServing(cfg *tls.Config) {
	if p != nil {
		p.serving.Store(cfg)
	}
}

// replica is the admin API's view of the replica (nil without one).
func (p *replica) replica() api.Replica {
	if p == nil || p.node == nil {
		return nil
	}
	return p.node
}

func (p *replica) close() {
	if p == nil || p.node == nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = p.node.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.log.Warn("raft: shutting down took over 5s; stopping anyway")
	}
}

// rootsReload is meshserver's Options.RootsReload: a replica takes CA
// changes from the replicated state, never by reading DATA_DIR/ca again.
func (r raftFlags) rootsReload() time.Duration {
	if r.dir != "" {
		return -1
	}
	return 0
}

// writeRaft is `weft status`'s line on the replica's cluster.
func writeRaft(w io.Writer, st *state.Status) {
	if st == nil {
		return
	}
	fmt.Fprintf(w, "raft: replica %s at %s, %s; leader %s; %d peers\n", st.ID, st.Addr, strings.ToLower(st.State), orNone(st.Leader), len(st.Peers))
	if !st.CanIssue {
		fmt.Fprintf(w, "RAFT: CANNOT ISSUE: %s\n", st.Problem)
	}
}

// raftFindings are `weft check`'s judgement of the replica's cluster.
func raftFindings(st *state.Status) []CheckFinding {
	if st == nil {
		return nil
	}
	subj := "controller replica " + st.ID
	if !st.CanIssue {
		detail := "no raft leader"
		if st.NoLeaderFor != "" {
			detail += " for " + st.NoLeaderFor
		}
		return []CheckFinding{{Subject: subj, Check: "raft", Level: levelFail,
			Detail: detail + ": it cannot admit sidecars joining with a one-time join token or rotate the CA (sidecars keep serving, connected ones renew, those joining with a scheduler credential are admitted)",
			Fix:    st.Problem}}
	}
	return []CheckFinding{{Subject: subj, Check: "raft", Level: levelOK,
		Detail: fmt.Sprintf("%s, leader %s, %d peers", strings.ToLower(st.State), st.Leader, len(st.Peers))}}
}
