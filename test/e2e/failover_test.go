package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// failoverPolicy: client calls web. The second replica learns the
// instances from the file adapter, whose records no binding names, so
// the mesh is permissive.
const failoverPolicy = `
mesh {
  trust_domain     = "weft.test"
  default_action   = "deny"
  identity_binding = "permissive"
}

service "client" {
  binding "local" { name = "client" }
  protocol = "http"
  upstream "web" { local_port = 9001 }
}

service "web" {
  binding "local" { name = "web" }
  protocol = "http"
}

intention "client" "web" { action = "allow" }
`

// failoverChange is failoverPolicy with one more upstream for client: the
// config change made after the sidecars moved.
const failoverChange = failoverPolicy + `
service "extra" {
  protocol = "http"
}

intention "client" "extra" { action = "allow" }
`

// TestSidecarsFailOverToAnotherReplica: two controller replicas share one
// CA directory (the replicas of today: no replicated state yet). A runs
// the local adapter, whose sidecars it starts with both replicas'
// addresses (--sidecar-controller); B learns the same instances from the
// file adapter. The sidecars start while only A runs (so all of them are
// on A), then B starts. Under steady traffic A is killed with SIGKILL:
// every sidecar moves to B within a bounded wait, no call fails, and a
// policy change made after the move reaches them through B.
func TestSidecarsFailOverToAnotherReplica(t *testing.T) {
	dir := t.TempDir()
	listenA, adminA := harness.FreeAddr(t), harness.FreeAddr(t)
	listenB, adminB := harness.FreeAddr(t), harness.FreeAddr(t)
	policyDir := harness.WritePolicy(t, dir, failoverPolicy)
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := filepath.Join(dir, "workloads.hcl")
	harness.WriteFile(t, workloads, harness.Workload("client", app, `env = { UPSTREAM_WEB = "http://${HOST}:9001" }`)+harness.Workload("web", app))

	dataA := filepath.Join(dir, "a")
	oa := harness.WeftController(binDir, dataA, listenA, adminA,
		"--policy-dir", policyDir, "--adapter", "local="+workloads,
		"--adapter-option", "local.first_address=127.0.117.2", "--adapter-option", "local.isolation=none",
		"--sidecar-controller", listenA+","+listenB)
	oa.Process = harness.CtrlC
	a := harness.StartController(t, oa)
	// A dies by SIGKILL below, so nothing stops what its local adapter
	// started: the test does.
	t.Cleanup(func() {
		for _, pid := range instancePids(t, dataA) {
			if pidAlive(pid) {
				killPid(pid)
			}
		}
	})
	a.WaitFor(t, "both sidecars on replica A (B not running yet)", 60*time.Second, harness.Converged(2))
	st, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	clientHost := st.Address("client")
	if clientHost == "" {
		t.Fatalf("no client instance in A's status: %+v", st.Instances)
	}

	// B: the same CA directory, the same policy directory, the same
	// instances through the file adapter.
	type record struct {
		ID      string         `json:"id"`
		Service string         `json:"service"`
		Address string         `json:"address"`
		Ports   map[string]int `json:"ports"`
		Health  string         `json:"health"`
	}
	var recs []record
	for _, in := range st.Instances {
		recs = append(recs, record{ID: in.ID, Service: in.Service, Address: in.Address, Ports: in.Ports, Health: "passing"})
	}
	b, _ := json.Marshal(map[string]any{"instances": recs})
	instances := filepath.Join(dir, "instances.json")
	harness.WriteFile(t, instances, string(b))
	dataB := filepath.Join(dir, "b")
	if err := os.MkdirAll(dataB, 0o700); err != nil {
		t.Fatal(err)
	}
	a.WaitCACert(t)
	if err := os.Symlink(filepath.Join(dataA, "ca"), filepath.Join(dataB, "ca")); err != nil {
		t.Fatal(err)
	}
	ob := harness.WeftController(binDir, dataB, listenB, adminB,
		append([]string{"--policy-dir", policyDir}, fileAdapterArgs(t, dir, instances)...)...)
	ob.Process = harness.CtrlC
	rb := harness.StartController(t, ob)
	rb.WaitFor(t, "replica B to know both instances", 60*time.Second, func(s *harness.Status) bool { return len(s.Instances) == 2 })
	if s, _ := a.Status(); s == nil || len(s.Sidecars) != 2 {
		t.Fatalf("before the kill, want both sidecars on A; A's status: %+v", s)
	}

	// Steady traffic: client calls web through the sidecars, one call
	// after another, until the end.
	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ans, err := harness.CallThrough(net.JoinHostPort(clientHost, "8080"), "/call/web")
			if err == nil && ans.Status != 200 {
				err = fmt.Errorf("status %d", ans.Status)
			}
			if err != nil {
				failed.Add(1)
				errMu.Lock()
				errs = append(errs, err.Error())
				errMu.Unlock()
				continue
			}
			ok.Add(1)
		}
	}()
	harness.Eventually(t, "the first calls through the mesh", 10*time.Second, func() error {
		if ok.Load() < 10 {
			errMu.Lock()
			defer errMu.Unlock()
			return fmt.Errorf("%d calls answered, %d failed (the last: %v)", ok.Load(), len(errs), errs[max(0, len(errs)-1):])
		}
		return nil
	})

	// Kill A; every sidecar moves to B.
	killed := time.Now()
	a.Kill(t)
	var onB *harness.Status
	moved := harness.Eventually(t, "both sidecars to move to replica B and ACK its config", 10*time.Second, func() error {
		s, err := rb.Status()
		if err != nil {
			return err
		}
		if !harness.Converged(2)(s) {
			return fmt.Errorf("B has %d sidecars: %+v", len(s.Sidecars), s.Sidecars)
		}
		onB = s
		return nil
	})
	t.Logf("SIGKILL of replica A to both sidecars connected to replica B and ACKed: %v (bound 10s; the client's failover spread is at most 1s)", moved.Round(time.Millisecond))
	for _, sc := range onB.Sidecars {
		if sc.RejectedVersion != 0 {
			t.Errorf("sidecar %s rejected version %d on B: %s", sc.Instance, sc.RejectedVersion, sc.RejectError)
		}
	}

	// A config change after the move reaches the sidecars through B.
	changed := time.Now()
	harness.ReplaceFile(t, filepath.Join(policyDir, harness.PolicyFile), strings.Replace(failoverChange,
		`upstream "web" { local_port = 9001 }`, `upstream "web" { local_port = 9001 }
  upstream "extra" { local_port = 9002 }`, 1))
	reached := harness.Eventually(t, "the policy change to reach the client's sidecar through B", 10*time.Second, func() error {
		c, err := harness.ReadSidecarConfig(net.JoinHostPort(clientHost, "15000"))
		if err != nil {
			return err
		}
		var names []string
		for _, u := range c.Config.Upstreams {
			names = append(names, u.Name)
		}
		if !slices.Contains(names, "extra") {
			return fmt.Errorf("client's sidecar has upstreams %v at version %s", names, c.Version)
		}
		return nil
	})
	rb.WaitFor(t, "both sidecars to ACK the change on B", 10*time.Second, harness.Converged(2))
	t.Logf("policy change after the move to the client's sidecar applying it: %v (bound 10s)", reached.Round(time.Millisecond))

	// More calls after the change, then the count.
	n := ok.Load()
	harness.Eventually(t, "calls after the change", 10*time.Second, func() error {
		if ok.Load() < n+100 {
			return fmt.Errorf("%d calls since the change", ok.Load()-n)
		}
		return nil
	})
	close(stop)
	<-trafficDone
	t.Logf("steady traffic: %d calls answered, %d failed, from before the kill to %v after it (the change made %v after it)", ok.Load(), failed.Load(),
		time.Since(killed).Round(time.Millisecond), changed.Sub(killed).Round(time.Millisecond))
	if failed.Load() != 0 {
		t.Errorf("%d calls failed during the failover, want 0: %v", failed.Load(), errs[:min(len(errs), 5)])
	}
}
