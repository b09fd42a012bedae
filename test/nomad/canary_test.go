package nomad

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

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
	e := startMesh(t, nomadtest.Start(t), splitPolicy(20))
	c := e.agent.Client()
	apiJob := func(version string) string {
		return meshJobWith(jobOpts{name: "api", count: 2, controller: e.listen, roots: e.roots, group: canaryUpdate, version: version})
	}
	v1, front := e.runFrontendAPI(t, apiJob("v1"), 2)
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	waitDeployment(t, c, "api", "successful")

	// v2: Nomad places one canary beside the two v1 allocations.
	e.agent.Run(t, apiJob("v2"))
	var canary string
	harness.Eventually(t, "the canary allocation running", 2*time.Minute, func() error {
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
	harness.Eventually(t, "promoting the canary", time.Minute, func() error {
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
	harness.Eventually(t, "every call answered by the new version", 30*time.Second, func() error {
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
