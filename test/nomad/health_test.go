package nomad

import (
	"fmt"
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
	agent := nomadtest.Start(t)
	e := startMesh(t, agent, policy)
	apis, front := e.runFrontendAPI(t, meshJobWith(jobOpts{name: "api", count: 2, controller: e.listen, roots: e.roots, service: httpCheck}), 2)
	waitDeployment(t, agent.Client(), "api", "successful")
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	frontAdmin := fmt.Sprintf("127.0.0.1:%d", port(front, "admin"))
	all := instanceIDs(apis, "api")
	victim, other := apis[0].ID+"/api", apis[1].ID+"/api"
	victimApp := fmt.Sprintf("127.0.0.1:%d", port(apis[0], "app"))

	endpointsAre := func(what string, bound time.Duration, since time.Time, want []string) {
		t.Helper()
		waitEndpoints(t, frontAdmin, what, bound, since, want)
	}
	endpointsAre("both api instances, their checks passing", 30*time.Second, time.Now(), all)

	setHealth := func(verb string) time.Time { t.Helper(); return setAppHealth(t, victimApp, verb) }

	failed := setHealth("fail")
	endpointsAre(fmt.Sprintf("%s, its check failing, out of the frontend's endpoints within %v", victim, checkBound), checkBound, failed, []string{other})
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

	passed := setHealth("pass")
	endpointsAre(fmt.Sprintf("%s, its check passing again, back in the frontend's endpoints", victim), checkBound, passed, all)
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
