package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/logging"
)

// Options configure a replica.
type Options struct {
	// Dir is the replica's raft directory (--raft-dir): its log and
	// stable store (raft.db), snapshots, its node ID, and the sealed CA
	// state as last applied.
	Dir string
	// Addr is where the replica listens for its peers and how they reach
	// it (--raft-addr): a host and port, not an unspecified address.
	Addr string
	// BootstrapExpect: a new cluster is formed once this many replicas
	// (this one and those Join names) know one another.
	BootstrapExpect int
	// Join are peers' raft addresses, to form a cluster with or to join.
	Join []string
	// Key seals the CA state (ReadKeyFile); every replica needs the same.
	Key []byte
	// TLS is how replicas authenticate one another.
	TLS PeerTLS
	// LocalCA is the CA this replica started with: the leader of a
	// cluster that holds no CA yet makes it the cluster's.
	LocalCA func() (ca.State, error)
	// OnCA installs the cluster's CA state whenever it changes here (it
	// is called from raft's goroutine, and at Open with the state kept
	// from the last run).
	OnCA   func(ca.State)
	Logger *slog.Logger
	// SnapshotThreshold and TrailingLogs tune raft's compaction (0:
	// raft's defaults, a snapshot every 8192 entries keeping 10240).
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// OnPolicy hands over the active policy whenever it changes here
	// (from raft's goroutine; it must not block), once the replica has
	// replayed the entries it had at its start (policy.go).
	OnPolicy func(PolicyVersion)
}

// ErrNoLeader is wrapped by the error of a write made while the replica
// knows no leader: it cannot reach a quorum of its peers.
var ErrNoLeader = errors.New("no raft leader")

// applyTimeout bounds a write, forwarded or not.
const applyTimeout = 5 * time.Second

// Node is one controller replica's part of the replicated state.
type Node struct {
	o     Options
	id    string
	addr  string
	seal  *sealer
	fsm   *fsm
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	mux   *mux
	trans *raft.NetworkTransport
	log   *slog.Logger
	// startIndex is the last log index at Open: the policy is handed
	// over once the replica has applied up to it.
	startIndex uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	noLeader  time.Time // since when no leader is known (zero: one is)
	lastError string
	handlers  map[string]PeerHandler // HandlePeer

	// ready is closed once raft is set: the peers' requests (rpc.go) may
	// arrive as soon as the listener runs, before raft has started.
	ready chan struct{}
}

// Open starts the replica: it opens its store, listens on Addr, and (in
// the background) forms or joins the cluster, or rejoins the one its
// store names.
func Open(o Options) (*Node, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("parsing --raft-addr %q: %w; want HOST:PORT, e.g. 10.0.0.1:7402", o.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("--raft-addr %q: peers dial this address, so it must name this host (not 0.0.0.0 or ::)", o.Addr)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the raft directory: %w", err)
	}
	seal, err := newSealer(o.Key)
	if err != nil {
		return nil, err
	}
	id, err := loadOrCreateID(filepath.Join(o.Dir, "node-id"))
	if err != nil {
		return nil, err
	}
	o.TLS.key = derivePeerKey(o.Key)
	log := o.Logger.With("raft_id", id)
	n := &Node{o: o, id: id, addr: o.Addr, seal: seal, log: log, ready: make(chan struct{})}
	n.fsm = newFSM(seal, filepath.Join(o.Dir, cacheFile), o.OnCA, log)
	n.fsm.pol.cache, n.fsm.pol.onPolicy = filepath.Join(o.Dir, policyCacheFile), o.OnPolicy

	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn,
		Output: logging.LineWriter(log.With("logger", "raft"), slog.LevelWarn), DisableTime: true})
	store, err := raftboltdb.NewBoltStore(filepath.Join(o.Dir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("opening the raft store %s: %w", filepath.Join(o.Dir, "raft.db"), err)
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(o.Dir, 3, hlog)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("opening the raft snapshots: %w", err)
	}
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("reading the raft store: %w", err)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listening for raft peers on %s: %w (pick another --raft-addr)", o.Addr, err)
	}
	n.mux = newMux(ln, o.TLS, log)
	n.mux.serveRPC = n.serveRPC
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: n.mux, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(id)
	conf.Logger = hlog
	if o.SnapshotThreshold > 0 {
		conf.SnapshotThreshold = o.SnapshotThreshold
	}
	if o.TrailingLogs > 0 {
		conf.TrailingLogs = o.TrailingLogs
	}
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		store.Close()
		ln.Close()
		return nil, fmt.Errorf("creating the raft log cache: %w", err)
	}
	go n.mux.run()
	n.startQuiet(existing)
	r, err := raft.NewRaft(conf, n.fsm, logs, store, snaps, n.trans)
	if err != nil {
		n.mux.Close()
		store.Close()
		return nil, fmt.Errorf("starting raft: %w", err)
	}
	n.raft = r
	n.startIndex = r.LastIndex()
	n.catchUp()
	close(n.ready)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.watch(ctx) }()
	go func() {
		defer n.wg.Done()
		if !existing {
			n.form(ctx)
		}
	}()
	log.Info("raft replica started", "raft_addr", o.Addr, "existing_state", existing, "bootstrap_expect", o.BootstrapExpect, "join", o.Join)
	return n, nil
}

// cacheFile keeps the sealed CA state as last applied, so that a replica
// that restarts serves with the cluster's CA before it has caught up.
const cacheFile = "ca-state.sealed"

// LoadCachedCA reads the CA state a replica kept in dir at its last run,
// if there is one.
func LoadCachedCA(dir string, key []byte) (ca.State, bool, error) {
	b, err := inputlimit.ReadFile(filepath.Join(dir, cacheFile), maxCommandBytes)
	if errors.Is(err, os.ErrNotExist) {
		return ca.State{}, false, nil
	}
	if err != nil {
		return ca.State{}, false, fmt.Errorf("reading the kept CA state: %w", err)
	}
	seal, err := newSealer(key)
	if err != nil {
		return ca.State{}, false, err
	}
	f := &fsm{seal: seal}
	st, err := f.openCA(b)
	if err != nil {
		return ca.State{}, false, fmt.Errorf("reading the kept CA state %s: %w", filepath.Join(dir, cacheFile), err)
	}
	return st, true, nil
}

func loadOrCreateID(path string) (string, error) {
	b, err := inputlimit.ReadFile(path, 256)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("reading the raft node ID: %s is empty; remove it only with the whole raft directory", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the raft node ID: %w", err)
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generating the raft node ID: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if err := writeFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("writing the raft node ID: %w", err)
	}
	return id, nil
}

// HasCA reports whether the replicated state holds the cluster's CA
// (applied here, and handed to Options.OnCA).
func (n *Node) HasCA() bool { return n.fsm.digest() != "" }

// ID is the replica's raft server ID.
func (n *Node) ID() string { return n.id }

// Close leaves the cluster's traffic (not its membership: a replica that
// stops is still counted until `weft operator raft remove-peer`).
func (n *Node) Close() error {
	n.cancel()
	err := n.raft.Shutdown().Error()
	n.mux.Close()
	n.trans.Close()
	n.wg.Wait()
	n.store.Close()
	return err
}

// form bootstraps a new cluster once BootstrapExpect replicas know one
// another, or joins one through Join.
func (n *Node) form(ctx context.Context) {
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.addr)}
	if n.o.BootstrapExpect == 1 && len(n.o.Join) == 0 {
		n.bootstrap([]raft.Server{self})
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastLog := time.Time{}
	for {
		servers := map[string]raft.Server{n.id: self}
		var joined bool
		for _, addr := range n.o.Join {
			info, err := n.call(addr, rpcRequest{Op: opInfo})
			if err != nil {
				continue
			}
			if info.Configured {
				// A cluster exists: join it.
				if _, err := n.call(addr, rpcRequest{Op: opAddVoter, ID: n.id, Addr: n.addr}); err == nil {
					joined = true
					n.log.Info("raft: joined the cluster", "through", addr)
					break
				} else if time.Since(lastLog) > 10*time.Second {
					n.log.Warn("raft: joining the cluster", "through", addr, "err", err)
					lastLog = time.Now()
				}
				continue
			}
			servers[info.ID] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(info.ID), Address: raft.ServerAddress(info.Addr)}
		}
		if joined || n.configured() {
			return
		}
		if n.o.BootstrapExpect > 0 && len(servers) >= n.o.BootstrapExpect {
			var list []raft.Server
			for _, s := range servers {
				list = append(list, s)
			}
			n.bootstrap(list)
			return
		}
		if time.Since(lastLog) > 10*time.Second {
			n.log.Info("raft: waiting for peers", "known", len(servers), "bootstrap_expect", n.o.BootstrapExpect, "join", n.o.Join)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (n *Node) bootstrap(servers []raft.Server) {
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		n.log.Error("raft: bootstrapping the cluster", "err", err)
		return
	}
	n.log.Info("raft: cluster bootstrapped", "servers", len(servers))
}

func (n *Node) configured() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// watch logs leadership changes, says loudly when no leader is known, and,
// as the leader of a cluster without a CA, makes its own CA the cluster's.
func (n *Node) watch(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last string
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n.catchUp()
		addr, id := n.raft.LeaderWithID()
		leader := string(addr)
		n.mu.Lock()
		if leader == "" && n.noLeader.IsZero() {
			n.noLeader = time.Now()
		} else if leader != "" {
			n.noLeader = time.Time{}
		}
		since := n.noLeader
		n.mu.Unlock()
		if leader != last {
			if leader != "" {
				n.log.Info("raft: leader", "leader", leader, "leader_id", string(id), "this_replica", n.raft.State() == raft.Leader)
				if warned {
					n.log.Info("raft: quorum is back; this replica admits sidecars and rotates the CA again")
				}
				warned = false
			}
			last = leader
		}
		if leader == "" && !warned && n.configured() && time.Since(since) > 3*time.Second {
			n.log.Error("raft: no leader: this replica cannot reach a quorum of its peers; it cannot admit sidecars that join with a one-time join token (it cannot be spent) or rotate the CA until one returns; sidecars keep serving, connected ones renew, and sidecars joining with a scheduler credential or a node token are still admitted",
				"peers", n.peerAddrs())
			warned = true
		}
		if n.raft.State() == raft.Leader && n.fsm.digest() == "" && n.o.LocalCA != nil {
			n.seedCA()
		}
	}
}

func (n *Node) seedCA() {
	st, err := n.o.LocalCA()
	if err != nil {
		n.log.Error("raft: reading this replica's CA to make it the cluster's", "err", err)
		return
	}
	if err := n.CommitCA("", st); err != nil {
		n.log.Error("raft: making this replica's CA the cluster's", "err", err)
		return
	}
	n.log.Info("raft: this replica's CA is now the cluster's", "root", st.Digest()[:12])
}

func (n *Node) peerAddrs() []string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		out = append(out, string(s.Address))
	}
	return out
}

// CommitCA makes next the cluster's CA state if the state in force is
// still base (its Digest; "" for the first one), and returns once this
// replica has installed it. It is the commit function of ca.CA.SetCommit.
func (n *Node) CommitCA(base string, next ca.State) error {
	plain, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encoding the CA state: %w", err)
	}
	sealed, err := n.seal.seal("CA state", plain)
	if err != nil {
		return err
	}
	cmd, err := encodeCommand(cmdSetCA, setCA{Base: base, Sealed: sealed})
	if err != nil {
		return err
	}
	res, idx, err := n.apply(cmd)
	if err != nil {
		return err
	}
	if res.Err != "" {
		if res.Err == ca.ErrStale.Error() {
			return fmt.Errorf("%w: another replica changed it first; run the command again", ca.ErrStale)
		}
		return errors.New(res.Err)
	}
	return n.waitApplied(idx)
}

// waitApplied waits until this replica has applied index (a write made
// through the leader reaches it a moment later).
func (n *Node) waitApplied(idx uint64) error {
	deadline := time.Now().Add(applyTimeout)
	for n.fsm.applied.Load() < idx {
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for this replica to apply entry %d (at %d): it is behind the leader", idx, n.fsm.applied.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// apply commits cmd through the leader: here, or forwarded to it.
func (n *Node) apply(cmd []byte) (result, uint64, error) {
	deadline := time.Now().Add(applyTimeout)
	var lastErr error
	for {
		if n.raft.State() == raft.Leader {
			f := n.raft.Apply(cmd, applyTimeout)
			err := f.Error()
			if err == nil {
				res, _ := f.Response().(result)
				return res, f.Index(), nil
			}
			lastErr = err
			if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
				return result{}, 0, fmt.Errorf("committing to the raft log: %w", err)
			}
		} else if addr, _ := n.raft.LeaderWithID(); addr != "" {
			resp, err := n.call(string(addr), rpcRequest{Op: opApply, Cmd: cmd})
			if err == nil && resp.Err == "" && !resp.NotLeader {
				return resp.Result, resp.Index, nil
			}
			if err == nil && resp.Err != "" && !resp.NotLeader {
				return result{}, 0, fmt.Errorf("committing through the leader %s: %s", addr, resp.Err)
			}
			lastErr = err
			if err == nil {
				lastErr = fmt.Errorf("%s is no longer the leader", addr)
			}
		}
		if time.Now().After(deadline) {
			return result{}, 0, n.noLeaderError(lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *Node) noLeaderError(last error) error {
	detail := ""
	if last != nil {
		detail = " (last: " + last.Error() + ")"
	}
	return fmt.Errorf("%w: this controller replica reaches no quorum of its peers %v within %s%s; it cannot spend a join token or rotate the CA until a quorum is back",
		ErrNoLeader, n.peerAddrs(), applyTimeout, detail)
}
