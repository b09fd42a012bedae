package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
)

// The bootstrap policy of the cluster (every replica's --policy-dir), and
// the two versions applied through raft: v2 gives api an upstream web,
// v3 one more, db.
const (
	applyBootstrap = `
mesh {
  trust_domain     = "weft.test"
  default_action   = "deny"
  identity_binding = "permissive"
}
service "api" {
  protocol = "http"
}
`
	applyV2 = `
mesh {
  trust_domain     = "weft.test"
  default_action   = "deny"
  identity_binding = "permissive"
}
service "api" {
  protocol = "http"
  upstream "web" { local_port = 9101 }
}
`
	applyV2Web = `
service "web" {
  protocol = "http"
}
intention "api" "web" { action = "allow" }
`
	applyV3 = `
mesh {
  trust_domain     = "weft.test"
  default_action   = "deny"
  identity_binding = "permissive"
}
service "api" {
  protocol = "http"
  upstream "web" { local_port = 9101 }
  upstream "db" { local_port = 9102 }
}
service "db" {
  protocol = "tcp"
}
`
	applyBad = `
service "api" {
  protocol = "carrier-pigeon"
}
`
)

// follower is a replica that is not the leader.
func (c *haCluster) follower(t *testing.T) int {
	t.Helper()
	for i, ctl := range c.Ctls {
		s, err := ctl.Status()
		if err == nil && s.Raft != nil && s.Raft.State == "Follower" {
			return i
		}
	}
	t.Fatal("no replica is a follower")
	return -1
}

func (c *haCluster) leader(t *testing.T) string {
	t.Helper()
	s, err := c.Ctls[0].Status()
	if err != nil || s.Raft == nil {
		t.Fatalf("reading replica 0's status: %v", err)
	}
	return s.Raft.Leader
}

func (c *haCluster) history(t *testing.T, i int) api.PolicyHistory {
	t.Helper()
	var h api.PolicyHistory
	if err := c.Ctls[i].Call("GET", "/v1/policy/history", nil, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPolicyApplyReplicated (issue 17 part 3): three replicas serve their
// --policy-dir as the bootstrap policy; `weft policy apply` through a
// follower reaches the sidecars of every replica, with higher versions; a
// stale --check-index is refused and changes nothing; history shows both
// applies with who and when; an invalid policy is refused with its
// diagnostics (by the CLI, and by the API when the CLI is bypassed); a
// restart of all three replicas keeps the applied policy.
func TestPolicyApplyReplicated(t *testing.T) {
	dir := t.TempDir()
	weft := filepath.Join(binDir, "weft")
	instances := filepath.Join(dir, "instances.json")
	harness.WriteFile(t, instances, `{"instances": [
  {"id": "api-0", "service": "api", "address": "127.0.121.40", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"},
  {"id": "api-1", "service": "api", "address": "127.0.121.41", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"},
  {"id": "api-2", "service": "api", "address": "127.0.121.42", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"}
]}`)
	policyDir := filepath.Join(dir, "policy")
	harness.WriteFile(t, filepath.Join(policyDir, "mesh.hcl"), applyBootstrap)
	v2 := filepath.Join(dir, "v2")
	harness.WriteFile(t, filepath.Join(v2, "mesh.hcl"), applyV2)
	harness.WriteFile(t, filepath.Join(v2, "web.hcl"), applyV2Web)
	v3 := filepath.Join(dir, "v3")
	harness.WriteFile(t, filepath.Join(v3, "mesh.hcl"), applyV3)
	harness.WriteFile(t, filepath.Join(v3, "web.hcl"), applyV2Web)
	bad := filepath.Join(dir, "bad")
	harness.WriteFile(t, filepath.Join(bad, "mesh.hcl"), applyBad)

	c := startCluster(t, dir, clusterOptions{Net: 121, PolicyDir: policyDir, Instances: instances, Want: 3})
	for i, ctl := range c.Ctls {
		s, _ := ctl.Status()
		if in := s.PolicyInForce; in == nil || in.Source != "directory" || in.Watched {
			t.Fatalf("replica %d before any apply: policy in force %+v, want the bootstrap directory", i, in)
		}
	}

	// One real sidecar per replica, each talking to that replica only.
	sidecars := make([]string, 3)
	for i, ctl := range c.Ctls {
		var tok api.JoinTokenResponse
		if err := ctl.Call("POST", "/v1/join-tokens", api.JoinTokenRequest{Adapter: "file", Instance: fmt.Sprint("api-", i), Service: "api"}, &tok); err != nil {
			t.Fatal(err)
		}
		sidecars[i] = harness.FreeAddr(t)
		cmd := exec.Command(filepath.Join(binDir, "weft-proxy"), "--instance", fmt.Sprint("api-", i), "--controller", ctl.Listen,
			"--trust-bundle", ctl.WaitCACert(t), "--admin", sidecars[i])
		cmd.Env = append(os.Environ(), "WEFT_JOIN_TOKEN="+tok.Token)
		harness.Start(t, fmt.Sprint("sidecar-api-", i), cmd, harness.Options{})
	}
	upstreams := func(i int) ([]string, uint64, error) {
		cfg, err := harness.ReadSidecarConfig(sidecars[i])
		if err != nil {
			return nil, 0, err
		}
		var names []string
		for _, u := range cfg.Config.Upstreams {
			names = append(names, u.Name)
		}
		slices.Sort(names)
		v, _ := strconv.ParseUint(cfg.Version, 10, 64)
		return names, v, nil
	}
	// waitUpstreams waits until every sidecar has applied a configuration
	// with exactly these upstreams, and returns their versions.
	waitUpstreams := func(what string, want ...string) []uint64 {
		versions := make([]uint64, 3)
		took := harness.Eventually(t, what, 10*time.Second, func() error {
			for i := range sidecars {
				got, v, err := upstreams(i)
				if err != nil {
					return err
				}
				if !slices.Equal(got, want) {
					return fmt.Errorf("sidecar of replica %d has upstreams %v (version %d), want %v", i, got, v, want)
				}
				versions[i] = v
			}
			return nil
		})
		t.Logf("%s: %s", what, took.Round(time.Millisecond))
		return versions
	}
	before := waitUpstreams("every replica's sidecar has the bootstrap policy")

	// Apply v2 through a follower: it forwards to the leader, and every
	// replica's sidecar gets it, under a higher version.
	f := c.follower(t)
	applyStart := time.Now()
	out, stderr, code := c.Ctls[f].RunWeft(t, weft, "policy", "apply", v2, "--applied-by", "alice")
	t.Logf("weft policy apply (through follower %d, %s; the leader is %s):\n%s%s", f, time.Since(applyStart).Round(time.Millisecond), c.leader(t), out, stderr)
	if code != 0 || !strings.Contains(out, "Comparing with the policy of") || !strings.Contains(out, "Applied: policy index") {
		t.Fatalf("apply v2: exit %d\n%s%s", code, out, stderr)
	}
	afterV2 := waitUpstreams("every replica's sidecar has v2 (upstream web)", "web")
	t.Logf("v2 reached the sidecars of all three replicas %s after the apply started", time.Since(applyStart).Round(time.Millisecond))
	for i := range before {
		if afterV2[i] <= before[i] {
			t.Errorf("sidecar of replica %d: version %d after the apply, %d before: want it higher", i, afterV2[i], before[i])
		}
	}
	h := c.history(t, 0)
	if len(h.Versions) != 1 || h.Versions[0].AppliedBy != "alice" {
		t.Fatalf("history after v2: %+v", h)
	}
	idx2 := h.Versions[0].Index
	for i, ctl := range c.Ctls {
		s := ctl.WaitFor(t, "the replicated policy in force", 5*time.Second, func(s *harness.Status) bool {
			return s.PolicyInForce != nil && s.PolicyInForce.Source == "replicated" && s.PolicyInForce.Index == idx2
		})
		t.Logf("replica %d: policy in force %s index %d by %s", i, s.PolicyInForce.Source, s.PolicyInForce.Index, s.PolicyInForce.AppliedBy)
	}

	// Editing the --policy-dir changes nothing now; each replica says why.
	harness.ReplaceFile(t, filepath.Join(policyDir, "mesh.hcl"), applyBootstrap+"\n# edited\n")
	for i, ctl := range c.Ctls {
		harness.Eventually(t, fmt.Sprintf("replica %d to say its --policy-dir is not read", i), 5*time.Second, func() error {
			if !strings.Contains(ctl.Out.String(), "--policy-dir changed, and is not read") {
				return errors.New("no such line in its log yet")
			}
			return nil
		})
	}
	for i := range sidecars {
		if got, _, err := upstreams(i); err != nil || !slices.Equal(got, []string{"web"}) {
			t.Fatalf("after the --policy-dir was edited, sidecar of replica %d has upstreams %v (%v), want v2's", i, got, err)
		}
	}

	// Bob planned against the bootstrap policy (index 0): his apply is
	// refused, says what the index is now and how to re-plan, and changes
	// nothing.
	out, stderr, code = c.Ctls[(f+1)%3].RunWeft(t, weft, "policy", "apply", v3, "--check-index", "0", "--applied-by", "bob")
	t.Logf("stale apply: exit %d\n%s%s", code, out, stderr)
	if code == 0 || !strings.Contains(stderr, fmt.Sprintf("the active policy's index is %d", idx2)) || !strings.Contains(stderr, "weft policy plan") ||
		!strings.Contains(stderr, fmt.Sprintf("--check-index %d", idx2)) {
		t.Fatalf("stale --check-index: exit %d, stderr %q; want refused with the index now and how to re-plan", code, stderr)
	}
	if h := c.history(t, 1); len(h.Versions) != 1 || h.Versions[0].Index != idx2 {
		t.Fatalf("history after the refused apply: %+v, want v2 only", h)
	}
	if got, _, err := upstreams(0); err != nil || !slices.Equal(got, []string{"web"}) {
		t.Fatalf("after the refused apply a sidecar has upstreams %v (%v), want v2's", got, err)
	}
	// Planned again, with the index the plan prints: taken.
	out, _, code = c.Ctls[(f+1)%3].RunWeft(t, weft, "policy", "plan", v3)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("--check-index %d", idx2)) {
		t.Fatalf("plan v3: exit %d\n%s", code, out)
	}
	out, stderr, code = c.Ctls[(f+1)%3].RunWeft(t, weft, "policy", "apply", v3, "--check-index", fmt.Sprint(idx2), "--applied-by", "bob")
	if code != 0 {
		t.Fatalf("apply v3 with the current index: exit %d\n%s%s", code, out, stderr)
	}
	waitUpstreams("every replica's sidecar has v3 (upstreams db, web)", "db", "web")

	// History, from any replica: both applies, newest first, with who
	// and when.
	out, _, code = c.Ctls[2].RunWeft(t, weft, "policy", "history")
	t.Logf("weft policy history:\n%s", out)
	h = c.history(t, 2)
	if code != 0 || len(h.Versions) != 2 || h.Versions[0].AppliedBy != "bob" || h.Versions[1].AppliedBy != "alice" ||
		h.Versions[0].Index <= idx2 || h.Versions[1].AppliedAt.IsZero() || h.Versions[0].AppliedAt.Before(h.Versions[1].AppliedAt) ||
		!strings.HasPrefix(h.Versions[0].Token, "admin token sha256:") || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Fatalf("history: exit %d, %+v", code, h)
	}
	idx3 := h.Versions[0].Index

	// An invalid policy: the CLI shows its diagnostics and sends nothing;
	// sent to the API directly, it is refused with them all the same.
	out, stderr, code = c.Ctls[0].RunWeft(t, weft, "policy", "apply", bad)
	t.Logf("invalid policy: exit %d\n%s%s", code, out, stderr)
	if code == 0 || !strings.Contains(stderr, "mesh.hcl:3") || !strings.Contains(stderr, "nothing was applied") {
		t.Fatalf("invalid policy through the CLI: exit %d, stderr %q", code, stderr)
	}
	err := c.Ctls[0].Call("POST", "/v1/policy/apply", api.PolicyApplyRequest{Files: map[string][]byte{"mesh.hcl": []byte(applyBad)}}, nil)
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnprocessableEntity || !strings.Contains(se.Message, "mesh.hcl:3") {
		t.Fatalf("invalid policy through the API: %v; want 422 with its diagnostics", err)
	}
	t.Logf("the API refuses it: %s", se.Message)
	if h := c.history(t, 0); len(h.Versions) != 2 || h.Versions[0].Index != idx3 {
		t.Fatalf("history after the invalid policy: %+v", h)
	}

	// Restart all three (all down, then all up): the applied policy stays
	// in force, not the --policy-dir.
	v3Versions := waitUpstreams("every replica's sidecar has v3 before the restart", "db", "web")
	c.restartAll()
	for i, ctl := range c.Ctls {
		// It compiled the policy it kept before hearing from its peers.
		if !strings.Contains(ctl.Out.String(), "serving the replicated policy as this replica kept it") {
			t.Errorf("replica %d did not start with the policy it kept", i)
		}
		s, err := ctl.Status()
		if err != nil || s.PolicyInForce == nil || s.PolicyInForce.Source != "replicated" || s.PolicyInForce.Index != idx3 {
			t.Fatalf("replica %d after the restart: %+v (%v); want the policy applied at %d", i, s.PolicyInForce, err, idx3)
		}
	}
	out, _, _ = c.Ctls[1].RunWeft(t, weft, "status")
	if !strings.Contains(out, fmt.Sprintf("policy in force: replicated, index %d, applied by bob", idx3)) {
		t.Errorf("weft status after the restart:\n%s", out)
	}
	out, _, code = c.Ctls[2].RunWeft(t, weft, "policy", "show")
	if code != 0 || !strings.Contains(out, "==> mesh.hcl <==") || !strings.Contains(out, `upstream "db"`) {
		t.Errorf("weft policy show after the restart: exit %d\n%s", code, out)
	}
	out, _, code = c.Ctls[2].RunWeft(t, weft, "policy", "show", "--index", fmt.Sprint(idx2))
	if code != 0 || !strings.Contains(out, "==> web.hcl <==") || !strings.Contains(out, "by alice") {
		t.Errorf("weft policy show --index %d: exit %d\n%s", idx2, code, out)
	}
	// Each sidecar reconnects to its restarted replica and acknowledges a
	// configuration from it: v3's, under a version above the one it had.
	restarted := time.Now()
	for i, ctl := range c.Ctls {
		id := fmt.Sprint("api-", i)
		var acked uint64
		ctl.WaitFor(t, "sidecar "+id+" to acknowledge a configuration of the restarted replica", 30*time.Second, func(s *harness.Status) bool {
			for _, sc := range s.Sidecars {
				if sc.Instance == id && sc.Version != 0 && sc.AckedVersion == sc.Version {
					acked = sc.AckedVersion
					return true
				}
			}
			return false
		})
		got, v, err := upstreams(i)
		if err != nil || !slices.Equal(got, []string{"db", "web"}) || v < acked || v <= v3Versions[i] {
			t.Errorf("sidecar of replica %d after the restart: upstreams %v version %d (%v); acked %d, had %d; want v3's under a higher version", i, got, v, err, acked, v3Versions[i])
		}
	}
	t.Logf("every sidecar acknowledged v3 from its restarted replica %s after the cluster was up", time.Since(restarted).Round(time.Millisecond))
}
