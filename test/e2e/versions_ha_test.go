package e2e

import (
	"fmt"
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

// TestConfigVersionsAcrossLaggingReplica (issue 17: versions comparable
// across replicas): a real sidecar, given all three replicas, holds the
// configuration of a policy applied while one replica was down
// (SIGKILL), so that replica never received it. The two others are
// killed, the lagging one restarts alone (no quorum: it cannot learn the
// policy) and the sidecar fails over to it. It must not take that
// replica's configuration of the older policy as newer: it keeps the one
// it holds, and the replica, which knows the sidecar holds a newer
// policy, sends it nothing. When a killed replica returns, quorum is back,
// the lagging replica applies the policy, and the sidecar gets its
// configuration under a version above the one it held (not stuck refusing
// it).
func TestConfigVersionsAcrossLaggingReplica(t *testing.T) {
	dir := t.TempDir()
	weft := filepath.Join(binDir, "weft")
	instances := filepath.Join(dir, "instances.json")
	harness.WriteFile(t, instances, `{"instances": [
  {"id": "api-0", "service": "api", "address": "127.0.125.40", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"},
  {"id": "web-0", "service": "web", "address": "127.0.125.41", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"}
]}`)
	policyDir := filepath.Join(dir, "policy")
	harness.WriteFile(t, filepath.Join(policyDir, "mesh.hcl"), applyBootstrap)
	v2 := filepath.Join(dir, "v2")
	harness.WriteFile(t, filepath.Join(v2, "mesh.hcl"), applyV2)
	harness.WriteFile(t, filepath.Join(v2, "web.hcl"), applyV2Web)

	c := startCluster(t, dir, clusterOptions{Net: 125, PolicyDir: policyDir, Instances: instances, Want: 2})
	var tok api.JoinTokenResponse
	if err := c.Ctls[0].Call("POST", "/v1/join-tokens", api.JoinTokenRequest{Adapter: "file", Instance: "api-0", Service: "api"}, &tok); err != nil {
		t.Fatal(err)
	}
	admin := harness.FreeAddr(t)
	cmd := exec.Command(filepath.Join(binDir, "weft-proxy"), "--instance", "api-0",
		"--controller", c.listen(0)+","+c.listen(1)+","+c.listen(2),
		"--trust-bundle", c.Ctls[0].WaitCACert(t), "--admin", admin)
	cmd.Env = append(os.Environ(), "WEFT_JOIN_TOKEN="+tok.Token)
	harness.Start(t, "sidecar-api-0", cmd, harness.Options{})

	// held reads the sidecar's configuration: its upstreams and version.
	held := func() ([]string, uint64, error) {
		cfg, err := harness.ReadSidecarConfig(admin)
		if err != nil {
			return nil, 0, err
		}
		var names []string
		for _, u := range cfg.Config.Upstreams {
			names = append(names, u.Name)
		}
		slices.Sort(names)
		v, err := strconv.ParseUint(cfg.Version, 10, 64)
		return names, v, err
	}
	waitHeld := func(what string, ok func(ups []string, v uint64) bool) uint64 {
		t.Helper()
		var version uint64
		took := harness.Eventually(t, what, 30*time.Second, func() error {
			ups, v, err := held()
			if err != nil {
				return err
			}
			if !ok(ups, v) {
				return fmt.Errorf("the sidecar holds version %d (policy index %d) with upstreams %v", v, policyIndexOfVersion(v), ups)
			}
			version = v
			return nil
		})
		t.Logf("%s: %s", what, took.Round(time.Millisecond))
		return version
	}
	waitHeld("the sidecar has the bootstrap policy", func(ups []string, v uint64) bool { return v != 0 && len(ups) == 0 })
	on, _ := c.Sidecars("the sidecar to ACK on some replica", []string{"api-0"}, 30*time.Second)

	// Kill a follower that does not serve the sidecar.
	lag := -1
	for _, i := range []int{0, 1, 2} {
		s, err := c.Ctls[i].Status()
		if err == nil && i != on["api-0"] && s.Raft != nil && s.Raft.State == "Follower" {
			lag = i
			break
		}
	}
	if lag < 0 {
		t.Fatalf("no follower other than replica %d (the sidecar's)", on["api-0"])
	}
	c.Kill(lag)
	t.Logf("replica %d killed; the sidecar is on replica %d", lag, on["api-0"])

	// Apply v2 through the sidecar's replica: the two running replicas
	// commit it, and the sidecar gets it.
	out, stderr, code := c.Ctls[on["api-0"]].RunWeft(t, weft, "policy", "apply", v2, "--applied-by", "alice")
	if code != 0 || !strings.Contains(out, "Applied: policy index") {
		t.Fatalf("apply v2: exit %d\n%s%s", code, out, stderr)
	}
	newer := waitHeld("the sidecar has v2 (upstream web)", func(ups []string, v uint64) bool { return slices.Equal(ups, []string{"web"}) })
	if policyIndexOfVersion(newer) == 0 {
		t.Fatalf("version %d of the applied policy does not begin with its raft index", newer)
	}

	// Kill the two others; the lagging replica restarts alone.
	var others []int
	for _, i := range []int{0, 1, 2} {
		if i != lag {
			c.Kill(i)
			others = append(others, i)
		}
	}
	c.Restart(lag)
	// The sidecar fails over to it, and says what it holds.
	var stream harness.SidecarStatus
	took := harness.Eventually(t, "the sidecar connected to the lagging replica", 30*time.Second, func() error {
		s, err := c.Ctls[lag].Status()
		if err != nil {
			return err
		}
		for _, sc := range s.Sidecars {
			if sc.Instance == "api-0" && sc.AckedVersion == newer {
				stream = sc
				return nil
			}
		}
		return fmt.Errorf("sidecars on replica %d: %+v", lag, s.Sidecars)
	})
	t.Logf("the sidecar reached the lagging replica %s after it restarted", took.Round(time.Millisecond))
	// Alone, it finds no leader.
	c.Ctls[lag].WaitFor(t, "the lagging replica to say it cannot issue", 30*time.Second, func(s *harness.Status) bool {
		return s.Raft != nil && !s.Raft.CanIssue
	})
	s, err := c.Ctls[lag].Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range s.Sidecars {
		if sc.Instance == "api-0" {
			stream = sc
		}
	}
	t.Logf("replica %d alone: can issue %v, problem %q, applied index %d of %d", lag, s.Raft.CanIssue, s.Raft.Problem, s.Raft.AppliedIndex, s.Raft.LastIndex)
	if stream.Version >= newer || stream.RejectedVersion != 0 {
		t.Fatalf("the lagging replica holds version %d for the sidecar (rejected %d); the sidecar holds %d of a newer policy: the replica must hold its older one back",
			stream.Version, stream.RejectedVersion, newer)
	}
	if ups, v, err := held(); err != nil || v != newer || !slices.Equal(ups, []string{"web"}) {
		t.Fatalf("on the lagging replica the sidecar holds version %d with upstreams %v (%v); want %d with [web]: it took an older policy", v, ups, err, newer)
	}
	t.Logf("the lagging replica holds version %d (policy index %d) back from the sidecar, which keeps %d (policy index %d)", stream.Version, policyIndexOfVersion(stream.Version), newer, policyIndexOfVersion(newer))

	// A killed replica returns: quorum, the lagging replica applies v2,
	// and the sidecar gets that replica's configuration of it.
	back := time.Now()
	c.Restart(others[0])
	later := waitHeld("the sidecar has a version above the one it held, still v2", func(ups []string, v uint64) bool {
		return v > newer && slices.Equal(ups, []string{"web"})
	})
	t.Logf("a newer version %d (policy index %d) reached the sidecar %s after replica %d restarted", later, policyIndexOfVersion(later), time.Since(back).Round(time.Millisecond), others[0])
	if policyIndexOfVersion(later) != policyIndexOfVersion(newer) {
		t.Fatalf("version %d begins with policy index %d, want %d (v2's)", later, policyIndexOfVersion(later), policyIndexOfVersion(newer))
	}
}

// policyIndexOfVersion is the raft index of the policy a configuration
// version was compiled from (core/meshserver: the top bit set, then 31
// bits of index); 0 for a policy read from files.
func policyIndexOfVersion(v uint64) uint64 {
	if v>>63 == 0 {
		return 0
	}
	return v >> 32 & (1<<31 - 1)
}
