package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/test/harness"
)

const raftPolicy = `
mesh {
  trust_domain     = "weft.test"
  default_action   = "deny"
  identity_binding = "permissive"
}
service "api" {
  protocol = "http"
}
`

// TestRaftReplicas runs three controller replicas on loopback (issue 17
// part 1), each with the file adapter on one instances file: they form a
// cluster (--bootstrap-expect 3), share one CA, and a join token spent
// through one replica is refused by the others; with the leader SIGKILLed
// a new token joins through a survivor; with two of three down the
// survivor says it cannot issue (status, weft check); restarted, the
// cluster recovers and the first token is still spent.
func TestRaftReplicas(t *testing.T) {
	dir := t.TempDir()
	instances := filepath.Join(dir, "instances.json")
	harness.WriteFile(t, instances, `{"instances": [
  {"id": "api-0", "service": "api", "address": "127.0.116.40", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"}
]}`)
	c := startCluster(t, dir, clusterOptions{Net: 116, PolicyDir: harness.WritePolicy(t, dir, raftPolicy), Instances: instances, Want: 1})
	ctls, raftAddr := c.Ctls, c.raftAddr
	st, err := ctls[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	leader := st.Raft.Leader
	t.Logf("leader %s", leader)

	tokens := joinAs{t, "file", "api-0", "api"}
	mint, join := tokens.mint, tokens.join
	// One CA: a token minted by replica 0 joins through replica 1, and is
	// then refused by replica 2 and replica 0.
	tok := mint(ctls[0])
	if err := join(ctls[1], tok); err != nil {
		t.Fatalf("join through replica 1 with replica 0's token: %v", err)
	}
	for _, i := range []int{2, 0} {
		if err := join(ctls[i], tok); status.Code(err) == codes.OK {
			t.Fatalf("the token spent through replica 1 joined again through replica %d", i)
		} else {
			t.Logf("replica %d refuses the spent token: %v", i, err)
		}
	}

	// SIGKILL the leader: a survivor elects a new one, and a new token
	// joins through it.
	var dead, alive []int
	for i := range ctls {
		if raftAddr(i) == leader {
			dead = append(dead, i)
		} else {
			alive = append(alive, i)
		}
	}
	if len(dead) != 1 {
		t.Fatalf("leader %s is none of the replicas", leader)
	}
	ctls[dead[0]].Kill(t)
	killed := time.Now()
	survivor := ctls[alive[0]]
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := join(survivor, mint(survivor))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no join through a survivor within 5s of the leader's SIGKILL: %v", err)
		}
	}
	t.Logf("a new instance joined through a survivor %s after the leader's SIGKILL", time.Since(killed).Round(time.Millisecond))

	// Kill a follower too: the last replica says it cannot issue.
	ctls[alive[1]].Kill(t)
	s := survivor.WaitFor(t, "the survivor to say it has no leader", 15*time.Second, func(s *harness.Status) bool {
		return s.Raft != nil && !s.Raft.CanIssue && s.Raft.Problem != ""
	})
	t.Logf("survivor: %s", s.Raft.Problem)
	if err := join(survivor, mint(survivor)); err == nil {
		t.Fatal("a join succeeded without a quorum")
	}
	rep, _, code := survivor.Check(t, filepath.Join(binDir, "weft"))
	raftFail := false
	for _, f := range rep.Mesh {
		if f.Check == "raft" && f.Level == "fail" {
			raftFail = true
		}
	}
	if code == 0 || !raftFail {
		t.Errorf("weft check without a quorum: exit %d, findings %+v; want a raft failure", code, rep.Mesh)
	}

	// Restart both: the cluster recovers; the first token stays spent.
	ctls[dead[0]] = ctls[dead[0]].Restart()
	ctls[alive[1]] = ctls[alive[1]].Restart()
	for _, c := range ctls {
		c.WaitFor(t, "a leader again", 30*time.Second, func(s *harness.Status) bool { return s.Raft != nil && s.Raft.CanIssue })
	}
	for i, c := range ctls {
		if err := join(c, tok); status.Code(err) == codes.OK {
			t.Fatalf("the spent token joined through replica %d after the restart", i)
		}
	}
}
