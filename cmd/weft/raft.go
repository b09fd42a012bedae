package main

import (
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
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/spiffe"
	"github.com/weftmesh/weft/core/state"
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
	key       []byte
	node      *state.Node
	authority *ca.CA
	log       *slog.Logger
	srv       atomic.Pointer[meshserver.Server]
	serving   atomic.Pointer[tls.Config]
}

// prepare checks the raft flags and, for a replica, installs the CA
// state it kept at its last run (newer than DATA_DIR/ca after a
// rotation). nil: a single controller.
func (r raftFlags) prepare(authority *ca.CA, log *slog.Logger) (*replica, error) {
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
	key, err := state.ReadKeyFile(r.keyFile)
	if err != nil {
		return nil, err
	}
	st, ok, err := state.LoadCachedCA(r.dir, key)
	if err != nil {
		return nil, err
	}
	if ok {
		if _, err := authority.Install(st); err != nil {
			return nil, err
		}
		log.Info("raft: took the CA state this replica kept at its last run", "active_root", authority.ActiveRootID())
	}
	return &replica{f: r, key: key, authority: authority, log: log}, nil
}

// open starts the replica; its peers authenticate it by the controller's
// own certificate (setServing hands it over once issued).
func (p *replica) open(authority *ca.CA, trustDomain string, log *slog.Logger) error {
	id := spiffe.Identity{TrustDomain: trustDomain, Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService}
	node, err := state.Open(state.Options{
		Dir: p.f.dir, Addr: p.f.addr, BootstrapExpect: p.f.expect, Join: p.f.join, Key: p.key,
		TLS:     state.PeerTLS{Certificate: p.certificate, Roots: authority.Pool, Identity: id.URL().String()},
		LocalCA: authority.State, OnCA: p.onCA, Logger: log,
	})
	if err != nil {
		return err
	}
	p.node = node
	authority.SetCommit(node.CommitCA)
	return nil
}

func (p *replica) certificate() (*tls.Certificate, error) {
	cfg := p.serving.Load()
	if cfg == nil {
		return nil, errors.New("the controller's certificate is not issued yet")
	}
	return cfg.GetCertificate(&tls.ClientHelloInfo{})
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
	if srv := p.srv.Load(); srv != nil {
		srv.RootsChanged()
	}
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
			Detail: detail + ": it cannot issue certificates to new sidecars or rotate the CA (sidecars keep serving, connected ones renew)",
			Fix:    st.Problem}}
	}
	return []CheckFinding{{Subject: subj, Check: "raft", Level: levelOK,
		Detail: fmt.Sprintf("%s, leader %s, %d peers", strings.ToLower(st.State), st.Leader, len(st.Peers))}}
}
