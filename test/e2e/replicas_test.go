package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
)

// The one three-replica cluster of the e2e tests (raft on loopback), and
// the pieces of a replica that tests with other layouts share.

// fileAdapterArgs installs examples/adapter-file as a plugin under dir
// and returns the controller flags that run it on instances (a JSON
// file), its checksum pinned.
func fileAdapterArgs(t *testing.T, dir, instances string) []string {
	t.Helper()
	plugins := filepath.Join(dir, "plugins")
	bin, err := os.ReadFile(filepath.Join(binDir, "weft-adapter-file"))
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(plugins, "weft-adapter-file"), string(bin))
	if err := os.Chmod(filepath.Join(plugins, "weft-adapter-file"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	return []string{"--plugin-dir", plugins, "--adapter", "file=" + instances, "--plugin-checksum", "file=sha256:" + hex.EncodeToString(sum[:])}
}

// joinAs mints join tokens for one instance through a replica's admin
// API, and joins with them through a replica's sidecar API as the
// instance's sidecar would: what the replicated spent tokens are tested
// with.
type joinAs struct {
	t                          *testing.T
	adapter, instance, service string
}

func (j joinAs) mint(c *harness.Controller) string {
	j.t.Helper()
	var out api.JoinTokenResponse
	if err := c.Call("POST", "/v1/join-tokens", api.JoinTokenRequest{Adapter: j.adapter, Instance: j.instance, Service: j.service}, &out); err != nil {
		j.t.Fatal(err)
	}
	return out.Token
}

func (j joinAs) join(c *harness.Controller, tok string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := meshClient(j.t, c).Join(ctx, &meshapi.JoinRequest{InstanceId: j.instance, JoinToken: tok, CsrDer: newCSR(j.t)})
	return err
}

// clusterOptions say what a haCluster runs.
type clusterOptions struct {
	// Net places replica i on 127.0.<Net>.<i+1>: ports 7400 (sidecars),
	// 7401 (admin) and 7402 (raft).
	Net int
	// PolicyDir is every replica's --policy-dir.
	PolicyDir string
	// Workloads is the local adapter's workloads file: replica 0 runs
	// them (its instances from 127.0.<Net+1>.2 on), replicas 1 and 2 watch
	// them (local.watch). Or:
	Workloads string
	// Instances is the file adapter's instances file, which every
	// replica reads (the sidecars are the test's).
	Instances string
	// Want is how many instances each replica must know before the
	// cluster is up.
	Want int
	// Env is added to the replicas' environment (and so to the sidecars'
	// and apps' the owner starts).
	Env []string
}

// haCluster is three controller replicas on loopback (raft), on the
// local adapter or the file adapter (clusterOptions). With the local
// adapter, every replica knows the same instances as the local adapter's
// (the owner runs them, the others watch), and a sidecar, given every
// replica's address, may use any of them.
type haCluster struct {
	harness.Replicas // Kill, Restart, Sidecars, Leader
	t                *testing.T
	dir              string
	net              int
	want             int
	workloads        string
	opts             []harness.ControllerOptions
}

// startHACluster writes policy and workloads (the local adapter's) and
// starts the three replicas, with env added to their environment; it
// waits until they formed a cluster and know want instances.
func startHACluster(t *testing.T, netByte int, policy, workloads string, want int, env ...string) *haCluster {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "workloads.hcl")
	harness.WriteFile(t, file, workloads)
	return startCluster(t, dir, clusterOptions{Net: netByte, PolicyDir: harness.WritePolicy(t, dir, policy), Workloads: file, Want: want, Env: env})
}

// startCluster starts the three replicas of o, with their data under dir,
// and waits until they formed a cluster and know o.Want instances.
func startCluster(t *testing.T, dir string, o clusterOptions) *haCluster {
	t.Helper()
	c := &haCluster{t: t, dir: dir, net: o.Net, want: o.Want, workloads: o.Workloads}
	key := filepath.Join(c.dir, "state.key")
	harness.WriteFile(t, key, "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n")
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	var adapter []string
	if o.Instances != "" {
		adapter = fileAdapterArgs(t, dir, o.Instances)
	}
	for i := range 3 {
		args := append([]string{"--policy-dir", o.PolicyDir}, adapter...)
		if o.Workloads != "" {
			args = append(args, "--adapter", "local="+o.Workloads,
				"--adapter-option", fmt.Sprintf("local.first_address=127.0.%d.2", o.Net+1), "--adapter-option", "local.isolation=none",
				"--sidecar-controller", c.listen(0)+","+c.listen(1)+","+c.listen(2))
			if i > 0 {
				args = append(args, "--adapter-option", "local.watch="+c.ownerAdapter())
			}
		}
		args = append(args, "--raft-dir", filepath.Join(c.dir, fmt.Sprint("raft", i)), "--raft-addr", c.raftAddr(i), "--state-key-file", key, "--bootstrap-expect", "3")
		for j := range 3 {
			if j != i {
				args = append(args, "--join", c.raftAddr(j))
			}
		}
		co := harness.WeftController(binDir, c.data(i), c.listen(i), c.host(i)+":7401", args...)
		co.Process = harness.CtrlC
		co.Process.Env = o.Env
		c.opts = append(c.opts, co)
	}
	if o.Workloads != "" {
		// Replica 0 may die by SIGKILL, so nothing stops what its local
		// adapter started: the test does.
		t.Cleanup(func() {
			if _, err := os.Stat(filepath.Join(c.ownerAdapter(), "local-state.json")); err != nil {
				return // the owner stopped them when it stopped (Close)
			}
			for _, pid := range instancePids(t, c.data(0)) {
				if pidAlive(pid) {
					killPid(pid)
				}
			}
		})
	}
	c.start()
	return c
}

// start starts every replica and waits until each knows a leader, its
// two peers and the instances.
func (c *haCluster) start() {
	c.t.Helper()
	var ctls []*harness.Controller
	for _, o := range c.opts {
		ctls = append(ctls, harness.StartController(c.t, o))
	}
	c.Replicas = harness.NewReplicas(c.t, ctls)
	start := time.Now()
	for _, ctl := range c.Ctls {
		ctl.WaitFor(c.t, fmt.Sprintf("a leader, three peers and %d instances", c.want), 60*time.Second, func(s *harness.Status) bool {
			return s.Raft != nil && s.Raft.CanIssue && len(s.Raft.Peers) == 3 && len(s.Instances) == c.want
		})
	}
	c.t.Logf("three replicas know a leader, their peers and %d instances %s after they started", c.want, time.Since(start).Round(time.Millisecond))
}

// restartAll stops every replica (as Ctrl-C does), then starts them all
// again and waits as at the start.
func (c *haCluster) restartAll() {
	c.t.Helper()
	for _, ctl := range c.Ctls {
		ctl.Stop()
	}
	c.start()
}

func (c *haCluster) host(i int) string     { return fmt.Sprintf("127.0.%d.%d", c.net, i+1) }
func (c *haCluster) raftAddr(i int) string { return c.host(i) + ":7402" }
func (c *haCluster) listen(i int) string   { return c.host(i) + ":7400" }
func (c *haCluster) data(i int) string     { return filepath.Join(c.dir, fmt.Sprint("data", i)) }

// ownerAdapter is the data directory of replica 0's local adapter.
func (c *haCluster) ownerAdapter() string { return filepath.Join(c.data(0), "adapters", "local") }

// passing waits until every live replica sees each of ids passing and
// every sidecar connected to it has ACKed the configuration it holds for
// it now: the first call after it finds its upstreams healthy, whichever
// replica each sidecar uses.
func (c *haCluster) passing(ids []string, bound time.Duration) time.Duration {
	c.t.Helper()
	return harness.Eventually(c.t, fmt.Sprintf("every replica to see %v passing with their configs ACKed", ids), bound, func() error {
		return c.EachAlive(func(_ int, s *harness.Status) error {
			health := map[string]string{}
			for _, in := range s.Instances {
				health[in.ID] = in.Health
			}
			for _, id := range ids {
				if health[id] != "passing" {
					return fmt.Errorf("sees %s %q", id, health[id])
				}
			}
			return s.AllAcked()
		})
	})
}

// spread restarts the sidecars (the owner starts them again, with new
// join tokens; each picks a replica at random among those that know its
// instance) until ok says their replicas suit the test, at most 20 times.
// At the cluster's start only the owner knows the instances (the watchers
// learn them from its state file), so the first sidecars join through it.
// Only before any traffic: a sidecar that restarts fails calls.
func (c *haCluster) spread(want []string, what string, ok func(on map[string]int) bool) map[string]int {
	c.t.Helper()
	for round := 1; ; round++ {
		on, _ := c.Sidecars("every sidecar to join and ACK", want, 30*time.Second)
		if ok(on) {
			c.t.Logf("sidecars on replicas %v (%s) after %d round(s) of restarting them", on, what, round)
			return on
		}
		if round == 20 {
			c.t.Fatalf("after %d rounds of restarting them, the sidecars are on replicas %v; want %s", round, on, what)
		}
		killed := map[int]bool{}
		for i, pid := range instancePids(c.t, c.data(0)) {
			// Never pid 0 (a sidecar between two runs): kill(0) is the
			// test's own process group.
			if i%2 == 1 && pid > 0 {
				killPid(pid)
				killed[pid] = true
			}
		}
		harness.Eventually(c.t, "the sidecars to run again", 30*time.Second, func() error {
			for i, pid := range instancePids(c.t, c.data(0)) {
				if i%2 == 1 && (killed[pid] || !pidAlive(pid)) {
					return fmt.Errorf("sidecar pid %d not running again", pid)
				}
			}
			return nil
		})
	}
}
