package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/test/harness"
)

// haPolicy: two client instances call web. The bindings are strict: every
// replica knows the local adapter's instances as the local adapter's (the
// owner runs them, the others watch), so a sidecar joins and renews
// through any replica.
const haPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}
service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "web" { local_port = 9001 }
}
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}
intention "client" "web" { action = "allow" }
`

func haWorkloads(webs int) string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("client", app, "instances = 2") + harness.Workload("web", app, fmt.Sprintf("instances = %d", webs))
}

// TestRaftFailoverUnderTraffic is issue 17's end-to-end proof: three
// controller replicas on loopback (raft), sidecars on the local adapter,
// steady traffic (GET and POST every 20 ms through both callers'
// sidecars). Replica 0 runs the local workloads; replicas 1 and 2 watch
// the same instances (local.watch), so every replica knows them as the
// local adapter's and every sidecar, given all three addresses, may use
// any of them. The leader is SIGKILLed (if it is the owner, the owner is
// killed and restarted first, and adopts its processes), with `weft ca
// rotate` asked of a survivor at the same moment: it completes once, and
// every sidecar renews through a survivor; while the leader is gone a new
// web instance joins and reaches both callers. Then a follower is killed:
// the last replica keeps its sidecars serving and says it cannot issue
// (status, log, weft check) until the leader's restart brings quorum
// back. Finally every replica is SIGKILLed and restarted: a join token
// spent before is refused by each. No call fails.
func TestRaftFailoverUnderTraffic(t *testing.T) {
	start := time.Now()
	c := startHACluster(t, 118, haPolicy, haWorkloads(1), 3)
	ctls, workloads := c.Ctls, c.workloads
	kill, restart, sidecars, leaderOf := c.Kill, c.Restart, c.Sidecars, c.Leader
	on, _ := sidecars("every sidecar to join and ACK", []string{"client-0", "client-1", "web-0"}, 60*time.Second)
	t.Logf("three replicas, three sidecars connected (%v) in %s", on, time.Since(start).Round(time.Millisecond))

	// moved says which sidecars were on replica i (before) and where
	// each of them is now (after).
	moved := func(i int, before, after map[string]int) string {
		var b strings.Builder
		for _, id := range slices.Sorted(maps.Keys(before)) {
			if before[id] == i {
				fmt.Fprintf(&b, " %s to replica %d;", id, after[id])
			}
		}
		if b.Len() == 0 {
			return " none"
		}
		return b.String()
	}
	all := func() []string {
		return []string{"client-0", "client-1", "web-0"}
	}

	leader := leaderOf()
	if leader == 0 {
		// The owner leads: SIGKILL it and restart it (it adopts its
		// processes), so that the leader killed under traffic below is a
		// replica that runs no workloads.
		killed := time.Now()
		kill(0)
		leader = leaderOf()
		elected := time.Since(killed)
		after, _ := sidecars("the owner's sidecars to move to a survivor", all(), 10*time.Second)
		t.Logf("the owner (replica 0) led: SIGKILLed; replica %d leads %s later; sidecars on survivors %s after the kill (bound 10s); those of the owner moved:%s",
			leader, elected.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), moved(0, on, after))
		restart(0)
		ctls[0].WaitFor(t, "the owner back with its three instances", 30*time.Second, func(s *harness.Status) bool {
			return s.Raft != nil && s.Raft.CanIssue && len(s.Instances) == 3
		})
	}
	follower := 3 - leader // neither the owner (0) nor the leader

	// Both kills below move sidecars: the leader and the other follower
	// each have at least one.
	on = c.spread(all(), fmt.Sprintf("some on the leader %d and some on replica %d", leader, follower), func(on map[string]int) bool {
		var onLeader, onFollower bool
		for _, i := range on {
			onLeader = onLeader || i == leader
			onFollower = onFollower || i == follower
		}
		return onLeader && onFollower
	})

	st, err := ctls[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	var clients []string
	for _, in := range st.Instances {
		if in.Service == "client" {
			clients = append(clients, in.Address)
		}
	}
	if len(clients) != 2 {
		t.Fatalf("want two client instances: %+v", st.Instances)
	}
	for _, c := range clients {
		harness.Eventually(t, "the caller at "+c+" to have web-0 in its endpoints again", 10*time.Second, func() error {
			eps, err := harness.SidecarEndpoints(net.JoinHostPort(c, "15000"), "web")
			if err != nil {
				return err
			}
			if !slices.Equal(eps, []string{"web-0"}) {
				return fmt.Errorf("endpoints %v", eps)
			}
			return nil
		})
	}
	traffic := &harness.Traffic{Service: "web", Caller: "spiffe://weft.test/ns/default/svc/client"}
	for _, c := range clients {
		traffic.URLs = append(traffic.URLs, "http://"+net.JoinHostPort(c, "9001")+"/")
	}
	ctx, stopTraffic := context.WithCancel(context.Background())
	trafficDone := make(chan struct{})
	go func() { defer close(trafficDone); traffic.Run(ctx) }()
	defer func() { stopTraffic(); <-trafficDone }()
	traffic.WaitCalls(t, "the first calls through the mesh", 50)

	// A join token spent through one replica is refused by the others.
	tokens := joinAs{t, "local", "web-0", "web"}
	mint, join := tokens.mint, tokens.join
	spent := mint(ctls[1])
	if err := join(ctls[2], spent); err != nil {
		t.Fatalf("join through replica 2 with replica 1's token: %v", err)
	}
	for _, i := range []int{0, 1, 2} {
		if err := join(ctls[i], spent); status.Code(err) == codes.OK {
			t.Fatalf("the token spent through replica 2 joined again through replica %d", i)
		}
	}

	rootsBefore := caRoots(t, ctls[0])
	oldRoot := readRoot(t, ctls[0].CACert())

	// SIGKILL the leader and, at the same moment, ask a survivor to rotate
	// the CA.
	type result struct {
		out string
		err error
	}
	rotated := make(chan result, 1)
	killed := time.Now()
	kill(leader)
	go func() {
		out, err := runWeft(t, "ca", "rotate", "--admin", ctls[follower].Admin, "--data-dir", ctls[follower].DataDir)
		rotated <- result{out, err}
	}()
	r := <-rotated
	if r.err != nil {
		t.Fatalf("weft ca rotate through replica %d while the leader (replica %d) was killed: %v\n%s", follower, leader, r.err, r.out)
	}
	t.Logf("weft ca rotate through replica %d, asked as the leader was SIGKILLed, returned %s after the kill:\n%s", follower, time.Since(killed).Round(time.Millisecond), r.out)
	newLeader := leaderOf()
	t.Logf("replica %d leads after the kill (%s)", newLeader, time.Since(killed).Round(time.Millisecond))
	// The rotation is committed by the leader; a follower applies it when
	// the entry reaches it: wait for each (bounded), then check there was
	// exactly one.
	for _, i := range c.Alive {
		took := harness.Eventually(t, fmt.Sprintf("replica %d holding the rotated roots", i), 5*time.Second, func() error {
			roots := caRoots(t, ctls[i])
			if len(roots.Roots) != 2 || !roots.Roots[0].Active || roots.Roots[1].ID != rootsBefore.Roots[0].ID {
				return fmt.Errorf("roots %+v, want the new active root and the old one (%s)", roots.Roots, rootsBefore.Roots[0].ID)
			}
			return nil
		})
		t.Logf("replica %d holds the new root and the old one %s after the rotate returned", i, took.Round(time.Millisecond))
	}
	newRoot := readRoot(t, ctls[follower].CACert())
	newRootID := caRoots(t, ctls[follower]).Roots[0].ID
	if newRoot.Equal(oldRoot) {
		t.Fatal("the active root did not change")
	}

	// Every sidecar renews through a survivor: it presents a leaf of the
	// new root within 5s of the rotation.
	meshAddr := func(id string) string {
		for _, in := range st.Instances {
			if in.ID == id {
				return net.JoinHostPort(in.Address, "15001")
			}
		}
		t.Fatalf("no instance %s", id)
		return ""
	}
	renewStart := time.Now()
	after, took := sidecars("every sidecar on a survivor", all(), 10*time.Second)
	t.Logf("sidecars on survivors %s after the leader's SIGKILL (bound 10s); those of the leader moved:%s", time.Since(killed).Round(time.Millisecond), moved(leader, on, after))
	for _, id := range all() {
		took := harness.Eventually(t, id+"'s sidecar to present a leaf of the new root (renewed through a survivor)", 5*time.Second, func() error {
			chain, err := presentedLeaf(meshAddr(id))
			if err != nil {
				return err
			}
			if chain[0].CheckSignatureFrom(newRoot) != nil {
				return fmt.Errorf("leaf of %s", chain[0].Issuer)
			}
			return nil
		})
		t.Logf("%s (on replica %d) renewed through a survivor: a leaf of the new root %s after the leader's SIGKILL, %s after the rotation returned (bound 5s; waited %s)",
			id, after[id], time.Since(killed).Round(time.Millisecond), time.Since(renewStart).Round(time.Millisecond), took.Round(time.Millisecond))
	}

	// While the leader is gone: a new web instance joins through a
	// survivor, and reaches both callers' endpoints.
	changed := time.Now()
	harness.ReplaceFile(t, workloads, haWorkloads(2))
	after, took = sidecars("the new instance web-1 to join through a survivor and ACK", append(all(), "web-1"), 5*time.Second)
	t.Logf("web-1 joined through replica %d (the leader, replica %d, is dead) and ACKed %s after the workloads file changed (bound 5s)", after["web-1"], leader, took.Round(time.Millisecond))
	for _, c := range clients {
		took := harness.Eventually(t, "the caller at "+c+" to have web-1 in its endpoints", 5*time.Second, func() error {
			eps, err := harness.SidecarEndpoints(net.JoinHostPort(c, "15000"), "web")
			if err != nil {
				return err
			}
			if !slices.Equal(eps, []string{"web-0", "web-1"}) {
				return fmt.Errorf("endpoints %v", eps)
			}
			return nil
		})
		t.Logf("the endpoint change reached the caller at %s %s after the workloads file changed (bound 5s; waited %s)", c, time.Since(changed).Round(time.Millisecond), took.Round(time.Millisecond))
	}
	all = func() []string { return []string{"client-0", "client-1", "web-0", "web-1"} }
	traffic.WaitCalls(t, "calls after the change", 50)

	// Kill the other follower too: the owner is alone, keeps its sidecars
	// serving, and says it cannot issue.
	kill(follower)
	lost := time.Now()
	s := ctls[0].WaitFor(t, "the last replica to say it cannot issue", 15*time.Second, func(s *harness.Status) bool {
		return s.Raft != nil && !s.Raft.CanIssue && s.Raft.Problem != ""
	})
	t.Logf("the last replica says %q %s after the second kill", s.Raft.Problem, time.Since(lost).Round(time.Millisecond))
	before := after
	after, took = sidecars("every sidecar on the last replica, without a quorum", all(), 10*time.Second)
	t.Logf("sidecars on the last replica %s after the follower's SIGKILL (bound 10s); those of the follower moved:%s", time.Since(lost).Round(time.Millisecond), moved(follower, before, after))
	statusOut, _, _ := ctls[0].RunWeft(t, filepath.Join(binDir, "weft"), "status")
	if !strings.Contains(statusOut, "CANNOT ISSUE") {
		t.Errorf("weft status without a quorum does not say it cannot issue:\n%s", statusOut)
	}
	rep, _, code := ctls[0].Check(t, filepath.Join(binDir, "weft"))
	raftFail := false
	for _, f := range rep.Mesh {
		if f.Check == "raft" && f.Level == "fail" {
			raftFail = true
			t.Logf("weft check without a quorum (exit %d): %s", code, f.Detail)
		}
	}
	if code == 0 || !raftFail {
		t.Errorf("weft check without a quorum: exit %d, findings %+v; want a raft failure", code, rep.Mesh)
	}
	harness.Eventually(t, "the log to say raft has no leader", 5*time.Second, func() error {
		if !strings.Contains(ctls[0].Out.String(), "raft: no leader") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err := join(ctls[0], mint(ctls[0])); status.Code(err) == codes.OK {
		t.Fatal("a join succeeded without a quorum")
	} else {
		t.Logf("a join without a quorum is refused: %v", err)
	}
	asked := time.Now()
	out, err := runWeft(t, "ca", "rotate", "--admin", ctls[0].Admin, "--data-dir", ctls[0].DataDir)
	if err == nil || !strings.Contains(out, "quorum") {
		t.Errorf("weft ca rotate without a quorum: %v, want a failure that names the lost quorum:\n%s", err, out)
	}
	t.Logf("weft ca rotate without a quorum fails after %s: %s", time.Since(asked).Round(time.Millisecond), strings.TrimSpace(out))
	traffic.WaitCalls(t, "calls without a quorum", 50)

	// Restart the leader: quorum is back.
	restart(leader)
	back := time.Now()
	ctls[0].WaitFor(t, "the last replica to issue again", 30*time.Second, func(s *harness.Status) bool { return s.Raft != nil && s.Raft.CanIssue })
	t.Logf("quorum back %s after the killed leader's restart", time.Since(back).Round(time.Millisecond))
	harness.Eventually(t, "the log to say quorum is back", 5*time.Second, func() error {
		if !strings.Contains(ctls[0].Out.String(), "raft: quorum is back") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	restart(follower)
	for _, i := range c.Alive {
		ctls[i].WaitFor(t, "every replica to issue, with four instances", 30*time.Second, func(s *harness.Status) bool {
			return s.Raft != nil && s.Raft.CanIssue && len(s.Instances) == 4
		})
	}
	sidecars("every sidecar on a live replica", all(), 30*time.Second)
	traffic.WaitCalls(t, "calls after both restarts", 50)

	// A full restart: every replica SIGKILLed and started again. The
	// spent token stays spent on every one.
	for _, i := range []int{0, 1, 2} {
		kill(i)
	}
	for _, i := range []int{0, 1, 2} {
		restart(i)
	}
	for _, i := range c.Alive {
		ctls[i].WaitFor(t, "every replica back after a full restart", 60*time.Second, func(s *harness.Status) bool {
			return s.Raft != nil && s.Raft.CanIssue && len(s.Instances) == 4
		})
	}
	for i, c := range ctls {
		if roots := caRoots(t, c); len(roots.Roots) != 2 || roots.Roots[0].ID != newRootID {
			t.Errorf("replica %d's roots after a full restart: %+v, want the one rotation's two (active %s)", i, roots.Roots, newRootID)
		}
		if err := join(c, spent); status.Code(err) == codes.OK {
			t.Fatalf("the spent token joined through replica %d after a full restart", i)
		} else {
			t.Logf("replica %d refuses the spent token after a full restart: %v", i, err)
		}
	}
	sidecars("every sidecar on a replica after the full restart", all(), 30*time.Second)
	traffic.WaitCalls(t, "calls after the full restart", 50)

	stopTraffic()
	<-trafficDone
	t.Logf("steady traffic: %d calls answered, %d failed", traffic.Answered(), traffic.Failed())
	if n := traffic.Failed(); n != 0 {
		t.Errorf("%d calls failed, want 0: %v", n, traffic.Errors())
	}
}
