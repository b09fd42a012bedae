package nomad

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// What a group needs for updates without lost requests: Nomad deregisters
// the service, the adapter drops the instance at once (its desired status
// is stop), and shutdown_delay keeps the app serving while callers'
// sidecars apply that, before Nomad signals the tasks.
const rollingUpdate = `    shutdown_delay = "2s"
    update {
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "1m"
    }`

// A rolling update, a scale-up and a scale-down of the api under steady
// load from the frontend lose no request.
func TestRollingUpdateLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	e := startMesh(t, nomadtest.Start(t), policy)
	c := e.agent.Client()
	apiJob := func(count int, version string) string {
		return meshJobWith(jobOpts{name: "api", count: count, controller: e.listen, roots: e.roots, group: rollingUpdate, version: version})
	}
	_, front := e.runFrontendAPI(t, apiJob(2, "v1"), 2)
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	waitDeployment(t, c, "api", "successful")

	steps := []struct {
		name  string
		job   string
		count int
	}{
		{"rolling update to v2", apiJob(2, "v2"), 2},
		{"scale up to 3", apiJob(3, "v2"), 3},
		{"scale down to 1", apiJob(1, "v2"), 1},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			var ok, failed atomic.Int64
			var firstErr atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := 0; w < 2; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := call(frontApp); err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
						} else {
							ok.Add(1)
						}
					}
				}()
			}
			e.agent.Run(t, step.job)
			waitDeployment(t, c, "api", "successful")
			e.agent.Running(t, "default", "api", step.count, 2*time.Minute)
			e.ctl.WaitFor(t, "the mesh after the change", time.Minute, converged(step.count+1))
			close(stop)
			wg.Wait()
			t.Logf("%s: %d calls, %d failed", step.name, ok.Load()+failed.Load(), failed.Load())
			if failed.Load() != 0 {
				t.Errorf("%d of %d calls failed during %s; first: %v", failed.Load(), ok.Load()+failed.Load(), step.name, firstErr.Load())
			}
			if ok.Load() < 10 {
				t.Errorf("only %d calls succeeded: the load did not run through the change", ok.Load())
			}
		})
	}
}
