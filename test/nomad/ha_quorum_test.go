package nomad

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	weftapi "github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
)

// TestNomadRaftQuorumLossUnderTraffic is issue 17's quorum-loss proof
// with Nomad sidecars, on haMesh (three replicas each running its own
// nomad adapter against one real Nomad 1.6.1 agent, two api and two
// frontend allocations, steady traffic every 20 ms from each frontend's
// sidecar). The leader is SIGKILLed, then a follower: the last replica
// has no quorum. Its status (raft.can_issue false, with the problem),
// `weft status`, its log and `weft check` (exit non-zero, a raft failure
// naming the quorum) say it cannot issue, within bounds printed; a join
// token cannot be spent (refused, naming the quorum), while the sidecars
// keep serving on it.
//
// A third api allocation, placed by Nomad meanwhile, joins the last
// replica without a quorum: a Nomad sidecar joins with its workload
// identity, which its own nomad adapter has Nomad check, and nothing of
// that join is written to the raft log (core/meshserver joinWithCredential:
// no token is spent, the CA each replica holds signs): status and log say
// that only one-time join tokens (and CA rotation) wait for a quorum. The
// test asserts it: the new allocation joins and reaches both frontends
// while the replica still says it cannot spend a join token.
//
// One killed replica restarts: quorum is back (bound printed), the log
// says so, `weft check` passes; the other restarts: all three list the
// same three voters and leader (`weft operator raft list-peers`). Last,
// all three are SIGKILLed at once: the sidecars keep serving with what
// they hold; restarted, the replicas form the cluster again, every sidecar
// reconnects and ACKs, a join token spent before the restart is refused by
// each replica, and a sidecar's workload identity used before joins again
// (it is no single-use token: Nomad vouches for it while its allocation
// runs). No call fails.
func TestNomadRaftQuorumLossUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, three controllers and sidecars; skipped with -short")
	}
	m := startHAMesh(t)
	c, traffic := m.c, m.traffic
	weft := filepath.Join(binDir, "weft")
	all := m.all

	// SIGKILL the leader: the survivors elect a new one, its sidecars move.
	killed := time.Now()
	c.Kill(m.leader)
	after, took := c.Sidecars("every sidecar on a survivor with its config ACKed", all, 10*time.Second)
	t.Logf("every sidecar on a survivor %s after the SIGKILL of the leader %d (bound 10s; waited %s): %v",
		time.Since(killed).Round(time.Millisecond), m.leader, took.Round(time.Millisecond), after)
	newLeader := c.Leader()
	t.Logf("replica %d leads %s after the SIGKILL", newLeader, time.Since(killed).Round(time.Millisecond))
	traffic.WaitCalls(t, "calls after the leader's kill", 50)

	// Then the survivor holding the most sidecars (so that its kill moves
	// some): the last replica has no quorum.
	follower, last := c.Alive[0], c.Alive[1]
	if count(after, last) > count(after, follower) {
		follower, last = last, follower
	}
	lost := time.Now()
	c.Kill(follower)
	st := c.Ctls[last].WaitFor(t, "the last replica to say it cannot issue", 15*time.Second, func(s *harness.Status) bool {
		return s.Raft != nil && !s.Raft.CanIssue && strings.Contains(s.Raft.Problem, "quorum")
	})
	t.Logf("replica %d (the last) says it cannot issue %s after the follower %d's SIGKILL (bound 15s): state %s, can_issue %v, problem %q",
		last, time.Since(lost).Round(time.Millisecond), follower, st.Raft.State, st.Raft.CanIssue, st.Raft.Problem)
	after, took = c.Sidecars("every sidecar on the last replica, without a quorum", all, 10*time.Second)
	t.Logf("every sidecar on the last replica %s after the second SIGKILL (bound 10s; waited %s): %v",
		time.Since(lost).Round(time.Millisecond), took.Round(time.Millisecond), after)
	took = harness.Eventually(t, "the last replica's log to say it has no leader", 15*time.Second, func() error {
		if l := harness.FirstLine(c.Ctls[last].Out.String(), "raft: no leader"); l == "" || !strings.Contains(l, "quorum") {
			return fmt.Errorf("no line with \"raft: no leader\" naming the quorum yet")
		}
		return nil
	})
	t.Logf("the log says so %s after the second SIGKILL (bound 15s; waited %s): %s", time.Since(lost).Round(time.Millisecond), took.Round(time.Millisecond),
		harness.FirstLine(c.Ctls[last].Out.String(), "raft: no leader"))
	out, _, _ := c.Ctls[last].RunWeft(t, weft, "status")
	if l := harness.FirstLine(out, "RAFT: CANNOT ISSUE"); !strings.Contains(l, "quorum") {
		t.Errorf("weft status without a quorum does not say it cannot issue for want of a quorum:\n%s", out)
	} else {
		t.Logf("weft status: %s", l)
	}
	// --probes=false: the allocations run on host networking, where
	// weft check's probes find every app port open (a failure of its
	// own, not this test's).
	rep, _, code := c.Ctls[last].Check(t, weft, "--probes=false")
	if f, ok := raftFinding(rep); code == 0 || !ok || f.Level != "fail" || !strings.Contains(f.Detail+f.Fix, "quorum") {
		t.Errorf("weft check without a quorum: exit %d, raft finding %+v; want a non-zero exit and a raft failure naming the quorum", code, f)
	} else {
		t.Logf("weft check without a quorum: exit %d, raft %s: %s (fix: %s)", code, f.Level, f.Detail, f.Fix)
	}
	traffic.WaitCalls(t, "calls without a quorum", 50)

	// A join token cannot be spent without a quorum: the refusal names it.
	mc := meshClient(t, &meshEnv{listen: haListen(last), roots: m.roots})
	tokenFor := weftapi.JoinTokenRequest{Adapter: "nomad", Instance: m.apis[0].ID + "/api", Service: "api"}
	var tok weftapi.JoinTokenResponse
	if err := c.Ctls[last].Call("POST", "/v1/join-tokens", tokenFor, &tok); err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	err := joinWith(mc, &meshapi.JoinRequest{InstanceId: tokenFor.Instance, JoinToken: tok.Token})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "quorum") {
		t.Errorf("a join token spent without a quorum: %v; want Unavailable naming the quorum", err)
	}
	t.Logf("a join token without a quorum is refused after %s: %v", time.Since(asked).Round(time.Millisecond), err)

	// A Nomad allocation placed meanwhile joins with its workload
	// identity: nothing of it is written to the raft log.
	scaled := time.Now()
	m.agent.Run(t, meshJob("api", 3, haControllers(), m.roots))
	apis := m.agent.Running(t, "default", "api", 3, 2*time.Minute)
	third := slices.IndexFunc(apis, func(a *api.AllocationListStub) bool {
		return !slices.ContainsFunc(m.apis, func(b *api.AllocationListStub) bool { return b.ID == a.ID })
	})
	if third < 0 {
		t.Fatalf("the scaled job runs no new allocation: %v", instanceIDs(apis, "api"))
	}
	all = append(instanceIDs(apis, "api"), instanceIDs(m.fronts, "frontend")...)
	slices.Sort(all)
	after, _ = c.Sidecars("the third api's sidecar to join the last replica, without a quorum, and ACK", all, time.Minute)
	for _, f := range m.fronts {
		waitEndpoints(t, fmt.Sprintf("127.0.0.1:%d", port(f, "admin")), "without a quorum, the frontend "+f.ID+" to have the three apis", time.Minute, scaled, instanceIDs(apis, "api"))
	}
	c.agree("the last replica to know the five instances, passing, every sidecar ACKed", all, 30*time.Second)
	if st, err := c.Ctls[last].Status(); err != nil || st.Raft == nil || st.Raft.CanIssue {
		t.Fatalf("the last replica's raft after the join: %+v (%v); want it still without a quorum (what this part tests)", st, err)
	}
	t.Logf("the third api %s joined replica %d without a quorum (workload identity, no raft write) and reached both frontends %s after the job was scaled (Nomad placing and starting it included)",
		apis[third].ID, after[apis[third].ID+"/api"], time.Since(scaled).Round(time.Millisecond))
	traffic.WaitCalls(t, "calls after the scale-up without a quorum", 50)

	// Restart the leader killed first: quorum is back.
	back := time.Now()
	c.Restart(m.leader)
	c.Ctls[last].WaitFor(t, "the last replica to issue again", 30*time.Second, func(s *harness.Status) bool { return s.Raft != nil && s.Raft.CanIssue })
	t.Logf("quorum back: replica %d can issue %s after replica %d's restart (bound 30s)", last, time.Since(back).Round(time.Millisecond), m.leader)
	took = harness.Eventually(t, "the log to say quorum is back", 5*time.Second, func() error {
		if !strings.Contains(c.Ctls[last].Out.String(), "raft: quorum is back") {
			return fmt.Errorf("no line with \"raft: quorum is back\" yet")
		}
		return nil
	})
	t.Logf("the log says quorum is back %s after the restart (bound 5s; waited %s)", time.Since(back).Round(time.Millisecond), took.Round(time.Millisecond))
	c.Leader()
	c.ready(m.leader)
	took = c.agree("both live replicas to know the five instances, passing, every sidecar ACKed", all, 30*time.Second)
	t.Logf("the restarted replica knows the five instances from its own nomad adapter %s after its restart (waited %s)", time.Since(back).Round(time.Millisecond), took.Round(time.Millisecond))
	took = harness.Eventually(t, "weft check --probes=false to pass once quorum is back", 30*time.Second, func() error {
		rep, _, code = c.Ctls[last].Check(t, weft, "--probes=false")
		if f, ok := raftFinding(rep); code != 0 || !ok || f.Level != "ok" {
			return fmt.Errorf("exit %d, raft finding %+v, findings %+v", code, f, rep.Mesh)
		}
		return nil
	})
	f, _ := raftFinding(rep)
	t.Logf("weft check --probes=false against replica %d passes %s after quorum came back (waited %s): exit %d, raft: %s", last, time.Since(back).Round(time.Millisecond), took.Round(time.Millisecond), code, f.Detail)
	// A join token minted and spent now (quorum back) is what the full
	// restart below must still refuse.
	if err := c.Ctls[last].Call("POST", "/v1/join-tokens", tokenFor, &tok); err != nil {
		t.Fatal(err)
	}
	spent := tok.Token
	if err := joinWith(mc, &meshapi.JoinRequest{InstanceId: tokenFor.Instance, JoinToken: spent}); err != nil {
		t.Fatalf("a join token with quorum back: %v", err)
	}
	traffic.WaitCalls(t, "calls with quorum back", 50)

	// Restart the follower: all three list the same three voters and
	// the same leader.
	back = time.Now()
	c.Restart(follower)
	took = c.peersAgree(weft, 60*time.Second)
	t.Logf("all three replicas list the same three voters and leader (weft operator raft list-peers) %s after the follower's restart (bound 60s; waited %s)",
		time.Since(back).Round(time.Millisecond), took.Round(time.Millisecond))
	c.ready(follower)
	c.agree("every replica to know the five instances, passing, every sidecar ACKed", all, 30*time.Second)
	c.Sidecars("every sidecar on a live replica", all, 10*time.Second)
	traffic.WaitCalls(t, "calls after both restarts", 50)

	// A full restart: every replica SIGKILLed at once. The sidecars keep
	// serving with the configurations and certificates they hold.
	down := time.Now()
	for _, i := range []int{0, 1, 2} {
		c.Kill(i)
	}
	traffic.WaitCalls(t, "calls with every replica dead", 50)
	t.Logf("50 calls answered with every replica dead, %s after the SIGKILLs", time.Since(down).Round(time.Millisecond))
	back = time.Now()
	for _, i := range []int{0, 1, 2} {
		c.Restart(i)
	}
	for _, i := range c.Alive {
		c.Ctls[i].WaitFor(t, fmt.Sprintf("replica %d back in a cluster that can issue after the full restart", i), 60*time.Second, func(s *harness.Status) bool {
			return s.Raft != nil && s.Raft.CanIssue && len(s.Raft.Peers) == 3
		})
	}
	t.Logf("after the full restart every replica can issue, with three peers, %s after the restarts (bound 60s)", time.Since(back).Round(time.Millisecond))
	after, took = c.Sidecars("every sidecar reconnected to a replica and ACKed after the full restart", all, 30*time.Second)
	t.Logf("every sidecar reconnected and ACKed %s after the restarts (bound 30s; waited %s): %v", time.Since(back).Round(time.Millisecond), took.Round(time.Millisecond), after)
	c.agree("every replica to know the five instances, passing, every sidecar ACKed", all, 30*time.Second)
	for _, i := range c.Alive {
		c.ready(i)
		mc := meshClient(t, &meshEnv{listen: haListen(i), roots: m.roots})
		if err := joinWith(mc, &meshapi.JoinRequest{InstanceId: tokenFor.Instance, JoinToken: spent}); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "already used") {
			t.Errorf("replica %d, given the join token spent before the full restart: %v; want Unauthenticated, already used", i, err)
		} else {
			t.Logf("replica %d refuses the join token spent before the full restart: %v", i, err)
		}
	}
	// The workload identity the first api's sidecar joined with before:
	// Nomad vouches for it while the allocation runs, so it joins again.
	jwt, err := os.ReadFile(filepath.Join(m.agent.Dir, "data", "alloc", m.apis[0].ID, "weft-proxy", "secrets", "nomad_token"))
	if err != nil {
		t.Fatalf("reading the api sidecar's workload identity: %v", err)
	}
	if err := joinAs(meshClient(t, &meshEnv{listen: haListen(last), roots: m.roots}), m.apis[0].ID+"/api", strings.TrimSpace(string(jwt))); err != nil {
		t.Errorf("the api sidecar's workload identity, used before the full restart, after it: %v; want a certificate (it is no single-use token)", err)
	} else {
		t.Logf("the api sidecar's workload identity, used before the full restart, joins again after it (Nomad vouches for it while its allocation runs)")
	}
	traffic.WaitCalls(t, "calls after the full restart", 50)
	m.finish(t)
}

// count is how many of on's sidecars are on replica i.
func count(on map[string]int, i int) int {
	n := 0
	for _, j := range on {
		if j == i {
			n++
		}
	}
	return n
}

// raftFinding is weft check's finding on the replica's raft cluster.
func raftFinding(r harness.CheckReport) (harness.CheckFinding, bool) {
	for _, f := range r.Mesh {
		if f.Check == "raft" {
			return f, true
		}
	}
	return harness.CheckFinding{}, false
}

// peersAgree waits, within bound, until `weft operator raft list-peers
// --json` through each replica lists the same three voters, the three
// replicas' raft addresses, with the same one leading, and returns how
// long that took.
func (c *nomadHA) peersAgree(weft string, bound time.Duration) time.Duration {
	c.t.Helper()
	want := []string{haRaftAddr(0), haRaftAddr(1), haRaftAddr(2)}
	return harness.Eventually(c.t, "every replica to list the same three voters and leader", bound, func() error {
		leaders := map[string]bool{}
		for _, i := range c.Alive {
			out, stderr, code := c.Ctls[i].RunWeft(c.t, weft, "operator", "raft", "list-peers", "--json")
			if code != 0 {
				return fmt.Errorf("replica %d: list-peers exit %d: %s", i, code, stderr)
			}
			var peers weftapi.RaftPeers
			if err := json.Unmarshal([]byte(out), &peers); err != nil {
				return fmt.Errorf("replica %d: list-peers printed %q: %w", i, out, err)
			}
			var addrs []string
			for _, p := range peers.Peers {
				if p.Suffrage != "Voter" {
					return fmt.Errorf("replica %d lists %s as %s", i, p.Address, p.Suffrage)
				}
				addrs = append(addrs, p.Address)
				if p.Leader {
					leaders[p.Address] = true
				}
			}
			slices.Sort(addrs)
			if !slices.Equal(addrs, want) {
				return fmt.Errorf("replica %d lists peers %v, want %v", i, addrs, want)
			}
		}
		if len(leaders) != 1 {
			return fmt.Errorf("the replicas name leaders %v, want one", leaders)
		}
		return nil
	})
}
