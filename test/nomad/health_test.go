package nomad

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// httpCheck is the api service's Nomad check: the demo app's /healthz,
// every second.
const httpCheck = `      check {
        name     = "healthz"
        type     = "http"
        path     = "/healthz"
        interval = "1s"
        timeout  = "1s"
      }
`

// checkBound is how soon an instance whose Nomad check fails must leave
// a caller's endpoints: Nomad runs the check every second, the adapter
// reads the results every second (check_poll), then the controller
// pushes.
const checkBound = 4 * time.Second

// An api whose Nomad service check fails while its process keeps running
// leaves the frontend sidecar's endpoints within checkBound, gets no
// calls meanwhile, and comes back when the check passes again.
func TestNomadServiceCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	failingCheckLeaves(t, policy, httpCheck, checkBound)
}

// sidecarCheck is the api's health_check in policy, which its own
// sidecar runs against its app: /healthz every 200ms, out after 2
// failures.
const sidecarCheck = `  health_check {
    http                = "/healthz"
    interval            = "200ms"
    timeout             = "150ms"
    unhealthy_threshold = 2
    healthy_threshold   = 1
  }
`

// sidecarCheckBound is how soon an api whose sidecar's check fails must
// leave a caller's endpoints: interval x unhealthy_threshold (400ms),
// then the report to the controller and its push, with a margin for a
// loaded machine.
const sidecarCheckBound = 5 * time.Second

// The same with the check in policy, run by the api's own sidecar (no
// Nomad check at all): the instance leaves within sidecarCheckBound.
func TestNomadSidecarCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	apiService := "service \"api\" {\n  protocol = \"http\"\n"
	if !strings.Contains(policy, apiService) {
		t.Fatalf("the package's policy has no %q to add a health_check to", apiService)
	}
	failingCheckLeaves(t, strings.Replace(policy, apiService, apiService+sidecarCheck, 1), "", sidecarCheckBound)
}

// failingCheckLeaves runs the frontend and two api allocations (with
// nomadCheck in the api's Nomad service) under policy, makes one api
// app's /healthz fail while its process keeps serving (on its own port:
// the jobs use host networking), and checks that it leaves the frontend
// sidecar's endpoints within bound and goes critical, that 20 calls then
// are all answered by the other instance, and that it comes back within
// bound once /healthz passes again.
func failingCheckLeaves(t *testing.T, policy, nomadCheck string, bound time.Duration) {
	t.Helper()
	agent := nomadtest.Start(t)
	e := startMesh(t, agent, policy)
	apis, front := e.runFrontendAPI(t, meshJobWith(jobOpts{name: "api", count: 2, controller: e.listen, roots: e.roots, service: nomadCheck}), 2)
	waitDeployment(t, agent.Client(), "api", "successful")
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	frontAdmin := fmt.Sprintf("127.0.0.1:%d", port(front, "admin"))
	all := instanceIDs(apis, "api")
	victim, other := apis[0].ID+"/api", apis[1].ID+"/api"
	victimApp := fmt.Sprintf("127.0.0.1:%d", port(apis[0], "app"))

	waitEndpoints(t, frontAdmin, "both api instances, their checks passing", 30*time.Second, time.Now(), all)

	failed := setAppHealth(t, victimApp, "fail")
	waitEndpoints(t, frontAdmin, fmt.Sprintf("%s, its check failing, out of the frontend's endpoints within %v", victim, bound), bound, failed, []string{other})
	e.ctl.WaitFor(t, victim+" critical, every sidecar acknowledged", 10*time.Second, func(s *harness.Status) bool {
		for _, in := range s.Instances {
			if in.ID == victim && in.Health != "critical" {
				return false
			}
		}
		return s.Acked()
	})
	// Its process still serves: only its check fails. No call reaches it.
	for i := range 20 {
		r, err := call(frontApp)
		if err != nil {
			t.Fatalf("call %d through the frontend: %v", i, err)
		}
		if r.Response.Instance != other {
			t.Fatalf("call %d answered by %q, want only %s while %s's check fails", i, r.Response.Instance, other, victim)
		}
	}

	passed := setAppHealth(t, victimApp, "pass")
	waitEndpoints(t, frontAdmin, fmt.Sprintf("%s, its check passing again, back in the frontend's endpoints", victim), bound, passed, all)
	seen := map[string]bool{}
	harness.Eventually(t, "both api instances answering again", 20*time.Second, func() error {
		r, err := call(frontApp)
		if err != nil {
			return err
		}
		seen[r.Response.Instance] = true
		if !seen[victim] || !seen[other] {
			return fmt.Errorf("answered by %v", seen)
		}
		return nil
	})
}
