package nomad

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// meshEnv is a Nomad agent with a controller running the nomad adapter.
type meshEnv struct {
	agent     *nomadtest.Agent
	ctl       *harness.Controller
	listen    string
	roots     string
	policyDir string
}

func startMesh(t *testing.T, policy string) *meshEnv {
	t.Helper()
	e := &meshEnv{agent: nomadtest.Start(t)}
	dir := t.TempDir()
	e.policyDir = filepath.Join(dir, "policy")
	os.MkdirAll(e.policyDir, 0o755)
	e.setPolicy(t, policy)
	e.listen = harness.FreeAddr(t)
	e.ctl = startController(t, filepath.Join(dir, "weft"), e.listen, harness.FreeAddr(t),
		"--policy-dir", e.policyDir, "--adapter", "nomad="+e.agent.Addr,
		"--adapter-option", "nomad.token_file="+e.agent.TokenFile(t))
	e.roots = filepath.Join(dir, "weft", "ca", "ca.crt")
	poll(t, "the controller's CA", 30*time.Second, func() error { _, err := os.Stat(e.roots); return err })
	return e
}

func (e *meshEnv) setPolicy(t *testing.T, policy string) {
	t.Helper()
	tmp := filepath.Join(e.policyDir, ".mesh.hcl.tmp")
	if err := os.WriteFile(tmp, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.policyDir, "mesh.hcl")); err != nil {
		t.Fatal(err)
	}
}

// The api's policy with a split that sends 20% of the frontend's calls to
// the subset of Nomad canaries.
func splitPolicy(canaryWeight int) string {
	p := strings.Replace(policy, `service "api" {
  protocol = "http"
`, fmt.Sprintf(`service "api" {
  protocol = "http"
  subset "canary" {
    meta = { nomad_canary = "true" }
  }
  subset "stable" {
    meta = { nomad_canary = "false" }
  }
  route "canary-share" {
    split "canary" {
      weight = %d
    }
    split "stable" {
      weight = %d
    }
  }
`, canaryWeight, 100-canaryWeight), 1)
	if p == policy {
		panic("the api's service block moved: update splitPolicy")
	}
	return p
}

const canaryUpdate = `    update {
      canary           = 1
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "1m"
      auto_promote     = false
    }`

// A Nomad canary deployment takes the policy's share of traffic through a
// split on the canary subset; after promotion (and the split's removal),
// every call goes to the new version.
func TestCanarySplit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	e := startMesh(t, splitPolicy(20))
	c := e.agent.Client()
	apiJob := func(version string) string {
		return meshJobWith(jobOpts{name: "api", count: 2, controller: e.listen, roots: e.roots, group: canaryUpdate, version: version})
	}
	e.agent.Run(t, apiJob("v1"))
	e.agent.Run(t, meshJob("frontend", 1, e.listen, e.roots, "api"))
	v1 := e.agent.Running(t, "default", "api", 2, 2*time.Minute)
	front := e.agent.Running(t, "default", "frontend", 1, 2*time.Minute)[0]
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	e.ctl.WaitFor(t, "the v1 mesh", time.Minute, converged(3))
	waitDeployment(t, c, "api", "successful")

	// v2: Nomad places one canary beside the two v1 allocations.
	e.agent.Run(t, apiJob("v2"))
	var canary string
	poll(t, "the canary allocation running", 2*time.Minute, func() error {
		allocs, _, err := c.Allocations().List(&api.QueryOptions{Filter: `JobID == "api" and ClientStatus == "running"`})
		if err != nil {
			return err
		}
		for _, a := range allocs {
			if a.DeploymentStatus != nil && a.DeploymentStatus.Canary {
				canary = a.ID + "/api"
			}
		}
		if canary == "" || len(allocs) != 3 {
			return fmt.Errorf("%d running allocations, canary %q", len(allocs), canary)
		}
		return nil
	})
	e.ctl.WaitFor(t, "the canary's sidecar", time.Minute, converged(4))

	const calls = 200
	byCanary := 0
	for i := 0; i < calls; i++ {
		r, err := call(frontApp)
		if err != nil {
			t.Fatalf("call %d during the canary: %v", i, err)
		}
		if r.Response.Instance == canary {
			byCanary++
		}
	}
	t.Logf("the canary answered %d of %d calls (split weight 20%%)", byCanary, calls)
	// Binomial(200, 0.2): outside [20, 70] with a probability below 1e-4.
	if byCanary < 20 || byCanary > 70 {
		t.Errorf("the canary answered %d of %d calls; want about 20%% (the split's weight)", byCanary, calls)
	}
	for i := 0; i < 20; i++ {
		r, err := call(frontApp)
		if err != nil {
			t.Fatal(err)
		}
		if r.Response.Instance != canary && r.Response.Instance != v1[0].ID+"/api" && r.Response.Instance != v1[1].ID+"/api" {
			t.Errorf("answered by %s, neither the canary nor a v1 allocation", r.Response.Instance)
		}
	}

	// Promote: Nomad replaces the v1 allocations with v2 ones and clears
	// the canary flag; the operator drops the split.
	deps, _, err := c.Jobs().Deployments("api", false, nil)
	if err != nil || len(deps) == 0 {
		t.Fatalf("listing api's deployments: %v", err)
	}
	latest := deps[0]
	for _, d := range deps {
		if d.JobVersion > latest.JobVersion {
			latest = d
		}
	}
	// Nomad promotes once the canary has been healthy for min_healthy_time.
	poll(t, "promoting the canary", time.Minute, func() error {
		_, _, err := c.Deployments().PromoteAll(latest.ID, nil)
		return err
	})
	waitDeployment(t, c, "api", "successful")
	e.setPolicy(t, policy)
	v2 := e.agent.Running(t, "default", "api", 2, 2*time.Minute)
	want := map[string]bool{}
	for _, a := range v2 {
		if a.JobVersion != latest.JobVersion {
			t.Fatalf("allocation %s runs job version %d after the promotion, want %d", a.ID, a.JobVersion, latest.JobVersion)
		}
		want[a.ID+"/api"] = true
	}
	e.ctl.WaitFor(t, "the promoted mesh", time.Minute, converged(3))
	poll(t, "every call answered by the new version", 30*time.Second, func() error {
		for i := 0; i < 20; i++ {
			r, err := call(frontApp)
			if err != nil {
				return err
			}
			if !want[r.Response.Instance] {
				return fmt.Errorf("answered by %s, not a v2 allocation %v", r.Response.Instance, want)
			}
		}
		return nil
	})
}

// waitDeployment waits for the deployment of the job's current version to
// reach status.
func waitDeployment(t *testing.T, c *api.Client, job, status string) {
	t.Helper()
	j, _, err := c.Jobs().Info(job, nil)
	if err != nil {
		t.Fatalf("reading job %s: %v", job, err)
	}
	poll(t, "job "+job+"'s deployment "+status, 2*time.Minute, func() error {
		d, _, err := c.Jobs().LatestDeployment(job, nil)
		if err != nil {
			return err
		}
		if d == nil || d.JobVersion != *j.Version || d.Status != status {
			var b strings.Builder
			allocs, _, _ := c.Jobs().Allocations(job, false, nil)
			for _, a := range allocs {
				fmt.Fprintf(&b, "\n  alloc %s version %d desired %s client %s (%s)", a.ID, a.JobVersion, a.DesiredStatus, a.ClientStatus, a.ClientDescription)
				for name, ts := range a.TaskStates {
					fmt.Fprintf(&b, " %s=%s", name, ts.State)
					if n := len(ts.Events); n > 0 {
						fmt.Fprintf(&b, "[%s: %s]", ts.Events[n-1].Type, ts.Events[n-1].DisplayMessage)
					}
				}
			}
			if d != nil {
				for tg, st := range d.TaskGroups {
					fmt.Fprintf(&b, "\n  group %s: desired %d placed %d healthy %d unhealthy %d", tg, st.DesiredTotal, st.PlacedAllocs, st.HealthyAllocs, st.UnhealthyAllocs)
				}
				return fmt.Errorf("deployment %s (job version %d) is %s: %s%s", d.ID, d.JobVersion, d.Status, d.StatusDescription, b.String())
			}
			return fmt.Errorf("no deployment yet%s", b.String())
		}
		return nil
	})
}
