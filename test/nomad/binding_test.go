package nomad

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// impostorJob is the api's mesh job under another job name: a second
// Nomad job that registers the service "api" with a mesh port, and whose
// sidecar asks for api's identity with its own workload identity.
func impostorJob(listen, roots string) string {
	j := meshJob("api", 1, listen, roots)
	j = strings.Replace(j, `job "api" {`, `job "impostor" {`, 1)
	j = strings.Replace(j, `group "api" {`, `group "impostor" {`, 1)
	if !strings.Contains(j, `job "impostor"`) || !strings.Contains(j, `group "impostor"`) {
		panic("meshJob's job or group header moved: update impostorJob")
	}
	return j
}

// TestNomadImpostorJob: on a real Nomad 1.6.1 agent, a second job that
// registers the service "api" gets no certificate for it (its sidecar's
// join with its workload identity is refused, with the binding to add) and
// none of the frontend's calls, while the api job keeps serving them.
func TestNomadImpostorJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	e := startMesh(t, agent, policy)
	ctl, listen, roots := e.ctl, e.listen, e.roots

	apis, front := e.runFrontendAPI(t, meshJob("api", 1, listen, roots), 1)
	api0 := apis[0]

	agent.Run(t, impostorJob(listen, roots))
	imp := agent.Running(t, "default", "impostor", 1, 2*time.Minute)[0]
	impID := imp.ID + "/api"
	s := ctl.WaitFor(t, "the impostor's instance skipped as an unbound workload", time.Minute, func(s *harness.Status) bool {
		return slices.ContainsFunc(s.Skipped, func(k harness.SkippedStatus) bool { return k.Instance == impID })
	})
	for _, k := range s.Skipped {
		if k.Instance == impID && (k.Reason != "unbound workload" || k.Service != "api" ||
			!strings.Contains(k.Detail, `job = "impostor"`) || !strings.Contains(k.Detail, `namespace = "default"`)) {
			t.Errorf("skipped %+v: want reason unbound workload for api, naming the binding to add for job impostor", k)
		}
	}
	for _, sc := range s.Sidecars {
		if sc.Instance == impID {
			t.Errorf("the impostor's sidecar streams a configuration: %+v", sc)
		}
	}

	// The impostor's sidecar says why it has no certificate.
	var refusal string
	harness.Eventually(t, "the refusal in the impostor's sidecar log", time.Minute, func() error {
		log, err := taskLog(agent.Client(), imp.ID, "weft-proxy")
		if err != nil {
			return err
		}
		if refusal = harness.FirstLine(log, "may not serve service"); refusal == "" {
			return fmt.Errorf("no refusal yet in:\n%s", log)
		}
		return nil
	})
	t.Logf("the impostor's sidecar was refused: %s", refusal)
	for _, want := range []string{`workload nomad`, `job="impostor"`, `service "api"`, `binding "nomad"`} {
		if !strings.Contains(refusal, want) {
			t.Errorf("refusal %q does not say %q", refusal, want)
		}
	}

	// The frontend's sidecar knows only the api job's instance, and every
	// call lands there.
	frontAdmin := fmt.Sprintf("127.0.0.1:%d", port(front, "admin"))
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	if got, err := endpoints(frontAdmin); err != nil || !slices.Equal(got, []string{api0.ID + "/api"}) {
		t.Errorf("the frontend's api endpoints %v (%v), want only %s", got, err, api0.ID+"/api")
	}
	for i := 0; i < 10; i++ {
		var r *harness.DemoAnswer
		harness.Eventually(t, "frontend -> api", 30*time.Second, func() (err error) { r, err = call(frontApp); return err })
		if r.Response.Instance != api0.ID+"/api" {
			t.Fatalf("call %d answered by %q, want the api job's %s", i, r.Response.Instance, api0.ID+"/api")
		}
	}
}

// taskLog is a task's stderr in an allocation.
func taskLog(c *api.Client, allocID, task string) (string, error) {
	alloc, _, err := c.Allocations().Info(allocID, nil)
	if err != nil {
		return "", err
	}
	r, err := c.AllocFS().Cat(alloc, "alloc/logs/"+task+".stderr.0", nil)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	return string(b), err
}
