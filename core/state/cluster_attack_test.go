package state

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/weftmesh/weft/core/ca"
)

// Hostile tests of a cluster of three replicas on loopback (real raft,
// TLS and proofs): writes racing a leader change, a replica without a
// quorum asked to admit, and --join and --raft-addr as a careless
// operator writes them (docs/ha-threats.md).

type cluster struct {
	nodes []*Node
}

func openCluster(t *testing.T, n int) *cluster {
	t.Helper()
	key := bytes.Repeat([]byte{0x51}, KeySize)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freeLoopbackAddr(t)
	}
	c := &cluster{}
	for i := range n {
		authority, err := ca.New()
		if err != nil {
			t.Fatal(err)
		}
		cert, err := authority.ServerCertificate(controllerID, []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		var join []string
		for j, a := range addrs {
			if j != i {
				join = append(join, a)
			}
		}
		node, err := Open(Options{
			Dir: t.TempDir(), Addr: addrs[i], BootstrapExpect: n, Join: join, Key: key,
			TLS:     PeerTLS{Certificate: func() (*tls.Certificate, error) { return &cert, nil }, Identity: controllerID.URL().String()},
			LocalCA: authority.State, OnCA: func(ca.State) {},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, node)
	}
	t.Cleanup(func() {
		for _, node := range c.nodes {
			if node.raft.State() != raft.Shutdown {
				node.Close()
			}
		}
	})
	start := time.Now()
	for !c.formed() {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the cluster of %d did not form with a CA within 30s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a cluster of %d formed, with one CA on every replica, in %s", n, time.Since(start).Round(time.Millisecond))
	return c
}

func (c *cluster) formed() bool {
	for _, n := range c.nodes {
		if !n.HasCA() || !n.Status().CanIssue {
			return false
		}
	}
	return true
}

func (c *cluster) leader() *Node {
	for _, n := range c.nodes {
		if n.raft.State() == raft.Leader {
			return n
		}
	}
	return nil
}

// TestClusterAttackWritesRacingLeaderChanges: policy applies with a
// check-index and join-token spends go through a follower while the
// leadership moves again and again. Each write is committed at most
// once: a policy version is never recorded twice, a token is never
// admitted twice, and a write that failed says why.
func TestClusterAttackWritesRacingLeaderChanges(t *testing.T) {
	c := openCluster(t, 3)
	stop := make(chan struct{})
	var transfers int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			if l := c.leader(); l != nil && l.raft.LeadershipTransfer().Error() == nil {
				transfers++
			}
		}
	})

	// Sequential applies, each checked against the index the last one
	// returned, through whichever replica is not the leader now.
	var (
		applied  []uint64
		failures []string
		check    uint64
	)
	spent := map[string]bool{}
	var spendFailures []string
	admitted := 0
	deadline := time.Now().Add(8 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		via := c.nodes[i%3]
		v, _, err := via.ApplyPolicy(PolicyApply{Files: files("mesh.hcl", fmt.Sprintf("mesh {} # %d", i)), AppliedBy: "race", CheckIndex: &check})
		var stale *StaleIndexError
		switch {
		case err == nil:
			applied = append(applied, v.Index)
			check = v.Index
		case errors.As(err, &stale):
			// The entry was committed and the answer lost with the old
			// leader, or someone else applied: the index now says which.
			failures = append(failures, "stale: "+err.Error())
			check = stale.Current
		default:
			if !strings.Contains(err.Error(), "leader") && !errors.Is(err, ErrNoLeader) {
				t.Errorf("apply %d failed without saying why: %v", i, err)
			}
			failures = append(failures, err.Error())
		}
		id := fmt.Sprintf("%024x", i)
		ok, err := via.SpentTokens().Spend(id, time.Now().Add(time.Hour))
		if err == nil && ok {
			admitted++
			spent[id] = true
		} else {
			spendFailures = append(spendFailures, fmt.Sprintf("spend %d: ok=%v err=%v", i, ok, err))
		}
		// The same token through another replica: never admitted again.
		if ok2, err2 := c.nodes[(i+1)%3].SpentTokens().Spend(id, time.Now().Add(time.Hour)); err2 == nil && ok2 && spent[id] {
			t.Fatalf("token %s admitted twice, through two replicas", id)
		}
	}
	close(stop)
	wg.Wait()

	hist := c.nodes[0].PolicyHistory()
	seen := map[string]uint64{}
	for _, v := range hist {
		if prev, dup := seen[v.Digest]; dup {
			t.Fatalf("one policy recorded twice, at %d and %d", prev, v.Index)
		}
		seen[v.Digest] = v.Index
	}
	t.Logf("%d leadership transfers; %d applies committed, %d refused or failed; %d tokens spent, each once", transfers, len(applied), len(failures), admitted)
	for _, f := range append(failures[:min(len(failures), 5)], spendFailures...) {
		t.Logf("  failure: %.200s", f)
	}
	// A write forwarded during a transfer used to fail at once ("leadership
	// transfer in progress") where one made on the leader retried.
	for _, f := range append(failures, spendFailures...) {
		if strings.Contains(f, "transfer in progress") {
			t.Errorf("a write failed for a transfer instead of retrying with the next leader: %s", f)
		}
	}
	if transfers < 3 || len(applied) < 3 {
		t.Fatalf("%d transfers and %d applies: the race was not run", transfers, len(applied))
	}
}

// TestClusterAttackNoQuorum: with two of three replicas gone, the last
// one is asked to admit a sidecar (spend its token), to rotate, and to
// apply a policy: each refuses within the write bound, saying that no
// quorum is reachable, and nothing is spent: the token admits once the
// quorum is back.
func TestClusterAttackNoQuorum(t *testing.T) {
	c := openCluster(t, 3)
	survivor := c.nodes[0]
	for _, n := range c.nodes[1:] {
		n.Close()
	}
	start := time.Now()
	for survivor.Status().CanIssue {
		if time.Since(start) > 15*time.Second {
			t.Fatal("the survivor still knows a leader 15s after its peers stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the survivor knew no leader %s after its peers stopped", time.Since(start).Round(time.Millisecond))
	st := survivor.Status()
	if st.Problem == "" {
		t.Fatalf("status without a problem: %+v", st)
	}

	v := ca.NewJoinVerifierWith(bytes.Repeat([]byte{1}, 32), survivor.SpentTokens())
	tok, err := ca.MintJoinToken(ca.DeriveJoinKey(bytes.Repeat([]byte{1}, 32), "local"), ca.JoinClaims{Adapter: "local", Instance: "web-0", Service: "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issued := 0
	for _, tc := range []struct {
		name string
		try  func() error
	}{
		{"admit a sidecar", func() error {
			_, err := v.VerifyAnd(tok, func(ca.JoinClaims) error { issued++; return nil })
			if err != nil && !errors.Is(err, ca.ErrSpend) {
				return fmt.Errorf("not a spend error: %w", err)
			}
			return err
		}},
		{"rotate the CA", func() error { return survivor.CommitCA("anything", ca.State{}) }},
		{"apply a policy", func() error {
			_, _, err := survivor.ApplyPolicy(PolicyApply{Files: files("mesh.hcl", "mesh {}")})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.try()
			took := time.Since(start)
			if err == nil || !errors.Is(err, ErrNoLeader) || !strings.Contains(err.Error(), "quorum") {
				t.Fatalf("got %v, want ErrNoLeader saying no quorum is reachable", err)
			}
			if took > applyTimeout+2*time.Second {
				t.Fatalf("refused after %s, want within the write bound %s", took, applyTimeout)
			}
			t.Logf("refused after %s: %.160s", took.Round(time.Millisecond), err)
		})
	}
	// The certificate was made (accept runs before the spend) but never
	// handed out: the join failed. The token is unspent.
	if issued != 1 {
		t.Fatalf("accept ran %d times, want 1", issued)
	}
	if survivor.SpentTokens().Spent(mustNonce(t, tok)) {
		t.Fatal("the token is spent though the join failed")
	}
}

func mustNonce(t *testing.T, tok string) string {
	t.Helper()
	var nonce string
	v := ca.NewJoinVerifierWith(bytes.Repeat([]byte{1}, 32), ca.NewMemorySpentStore())
	if _, err := v.VerifyAnd(tok, func(c ca.JoinClaims) error { nonce = c.Nonce; return errors.New("only looking") }); err == nil || nonce == "" {
		t.Fatalf("reading the token's nonce: %v", err)
	}
	return nonce
}

// TestClusterAttackHostileJoin: --join addresses a careless operator or
// a poisoned configuration could give, beside a good --bootstrap-expect
// 1: the replica still forms its cluster, and none of them admits it to
// another or stops it. And --raft-addr values that cannot work are
// refused at Open with what to do.
func TestClusterAttackHostileJoin(t *testing.T) {
	// A listener that accepts and never answers (a black hole).
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	// A plain HTTP server.
	web, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	go func() {
		for {
			c, err := web.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
		}
	}()
	// A replica of another cluster (another state key).
	other := openAttackReplica(t)

	self := freeLoopbackAddr(t)
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.ServerCertificate(controllerID, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Dir: t.TempDir(), Addr: self, BootstrapExpect: 1, Key: bytes.Repeat([]byte{0x61}, KeySize),
		Join: []string{"", "not an address", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "http://127.0.0.1:7402/",
			// A long port, not a long host name: a name could make the
			// resolver ask a name server off loopback.
			"127.0.0.1:" + strings.Repeat("7", 4096),
			self, self, hole.Addr().String(), web.Addr().String(), other.addr},
		TLS:     PeerTLS{Certificate: func() (*tls.Certificate, error) { return &cert, nil }, Identity: controllerID.URL().String()},
		LocalCA: authority.State, OnCA: func(ca.State) {},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	n, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	start := time.Now()
	for !n.Status().CanIssue || !n.HasCA() {
		// One round tries every address; the black hole costs the request
		// bound (5 s).
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the replica did not form its cluster of one within 20s: %+v", n.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("formed its cluster of one in %s despite %d hostile --join addresses", time.Since(start).Round(time.Millisecond), len(opts.Join))
	if peers, _ := n.Peers(); len(peers) != 1 {
		t.Fatalf("peers %+v, want itself alone", peers)
	}
	if peers, _ := other.n.Peers(); len(peers) != 1 {
		t.Fatalf("the other cluster's peers %+v: it admitted a replica of another key", peers)
	}

	for _, tc := range []struct{ addr, want string }{
		{"0.0.0.0:7402", "not 0.0.0.0"},
		{"[::]:7402", "not 0.0.0.0"},
		{":7402", "not 0.0.0.0"},
		{"127.0.0.1", "want HOST:PORT"},
		{"", "want HOST:PORT"},
		{"127.0.0.1:99999", "pick another --raft-addr"},
		{other.addr, "pick another --raft-addr"},
	} {
		t.Run("raft-addr "+tc.addr, func(t *testing.T) {
			o := opts
			o.Dir, o.Addr, o.Join = t.TempDir(), tc.addr, nil
			n, err := Open(o)
			if err == nil {
				n.Close()
				t.Fatalf("Open with --raft-addr %q succeeded", tc.addr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestRetriedWriteIsItsOwnSuccess: a command committed twice (the leader
// committed it, lost the leadership before answering, and the proposer
// retried) is the same request's success the second time, not "already
// used" or a stale index; another request with the same content is still
// refused.
func TestRetriedWriteIsItsOwnSuccess(t *testing.T) {
	f := testFSM(t, nil)
	// A join token's spend.
	first := spend{ID: "0123456789abcdef01234567", Exp: 200, Now: 100, Req: "req-1"}
	for i, tc := range []struct {
		c    spend
		want bool
	}{
		{first, true},
		{first, true}, // the retry
		{spend{ID: first.ID, Exp: 200, Now: 101, Req: "req-2"}, false},
		{spend{ID: first.ID, Exp: 200, Now: 101}, false},
	} {
		if r := applyCmd(t, f, cmdSpend, tc.c); r.OK != tc.want {
			t.Fatalf("spend %d (%+v): %+v, want OK %v", i, tc.c, r, tc.want)
		}
	}
	// ... kept across a snapshot.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	g := testFSM(t, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap.(*fsmSnapshot).b))); err != nil {
		t.Fatal(err)
	}
	if r := applyCmd(t, g, cmdSpend, first); !r.OK {
		t.Fatalf("the retry after a restore: %+v, want its own success", r)
	}

	// A policy apply checked against index 0.
	apply := setPolicy{Check: true, CheckIndex: 0, Files: files("mesh.hcl", "mesh {}"), Req: "apply-1"}
	if r := applyPolicyAt(t, f, 10, apply); !r.OK || r.Index != 10 {
		t.Fatalf("apply: %+v", r)
	}
	if r := applyPolicyAt(t, f, 11, apply); !r.OK || r.Index != 10 {
		t.Fatalf("the retried apply: %+v, want its own success at index 10", r)
	}
	other := apply
	other.Req, other.Files = "apply-2", files("mesh.hcl", "mesh { }")
	if r := applyPolicyAt(t, f, 12, other); r.OK || r.Err != errStaleIndex {
		t.Fatalf("another apply checked against 0: %+v, want stale", r)
	}
	if h := len(f.pol.history); h != 1 {
		t.Fatalf("history of %d versions, want 1", h)
	}
}

// TestRetriedRotationIsItsOwnSuccess: a CA change committed twice is the
// same change's success the second time, not ErrStale; a change from the
// old base to another state is still stale.
func TestRetriedRotationIsItsOwnSuccess(t *testing.T) {
	installs := 0
	f := testFSM(t, func(ca.State) { installs++ })
	seal := func(s ca.State) []byte {
		b, _ := json.Marshal(s)
		out, err := f.seal.seal("CA state", b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	states := make([]ca.State, 3)
	for i := range states {
		c, err := ca.New()
		if err != nil {
			t.Fatal(err)
		}
		states[i], _ = c.State()
	}
	if r := applyCmd(t, f, cmdSetCA, setCA{Sealed: seal(states[0])}); !r.OK {
		t.Fatalf("first CA: %+v", r)
	}
	rotate := setCA{Base: states[0].Digest(), Sealed: seal(states[1])}
	if r := applyCmd(t, f, cmdSetCA, rotate); !r.OK {
		t.Fatalf("rotation: %+v", r)
	}
	if r := applyCmd(t, f, cmdSetCA, rotate); !r.OK {
		t.Fatalf("the retried rotation: %+v, want its own success", r)
	}
	if r := applyCmd(t, f, cmdSetCA, setCA{Base: states[0].Digest(), Sealed: seal(states[2])}); r.Err != ca.ErrStale.Error() {
		t.Fatalf("another rotation from the old base: %+v, want stale", r)
	}
	if installs != 2 || f.digest() != states[1].Digest() {
		t.Fatalf("%d installs, digest %s; want 2, the rotation's", installs, f.digest())
	}
}
