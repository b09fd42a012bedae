package nomad

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

func TestNomadMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	e := startMesh(t, agent, policy)
	ctl, listen, roots := e.ctl, e.listen, e.roots

	apis, front := e.runFrontendAPI(t, meshJob("api", 2, listen, roots), 2)
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	frontAdmin := fmt.Sprintf("127.0.0.1:%d", port(front, "admin"))

	t.Run("traffic flows over mTLS", func(t *testing.T) {
		var r *harness.DemoAnswer
		harness.Eventually(t, "frontend -> api through the sidecars", 30*time.Second, func() (err error) {
			r, err = call(frontApp)
			return err
		})
		if r.Response.Service != "api" || r.Response.Caller != "spiffe://weft.test/ns/default/svc/frontend" {
			t.Errorf("api answered %+v: want service api, called by frontend (the identity its sidecar verified)", r.Response)
		}
		// The api's mesh port speaks mTLS only: a client without a mesh
		// certificate is refused.
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port(apis[0], "mesh")), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			err = conn.Handshake()
			if err == nil {
				_, err = conn.Read(make([]byte, 1))
			}
			conn.Close()
		}
		if err == nil {
			t.Error("the api's mesh port answered a client without a certificate")
		}
		seen := map[string]bool{}
		harness.Eventually(t, "both api instances answering", 20*time.Second, func() error {
			r, err := call(frontApp)
			if err != nil {
				return err
			}
			seen[r.Response.Instance] = true
			if len(seen) < 2 {
				return fmt.Errorf("answered by %v", seen)
			}
			return nil
		})
		if want := instanceIDs(apis, "api"); !seen[want[0]] || !seen[want[1]] {
			t.Errorf("answered by %v, want %v", seen, want)
		}
	})

	t.Run("scaling converges the endpoint set", func(t *testing.T) {
		// As an operator does: change count in the job file and run it.
		agent.Run(t, meshJob("api", 3, listen, roots))
		apis = agent.Running(t, "default", "api", 3, 2*time.Minute)
		waitDeployment(t, agent.Client(), "api", "successful")
		healthy := time.Now() // Nomad found the third allocation healthy
		want := instanceIDs(apis, "api")
		harness.Eventually(t, "the frontend sidecar's endpoints for api within 2s of Nomad finding the third healthy", 2*time.Second, func() error {
			got, err := endpoints(frontAdmin)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("endpoints %v, want %v", got, want)
			}
			return err
		})
		t.Logf("endpoint set converged %v after the test saw Nomad's deployment succeed", time.Since(healthy).Round(time.Millisecond))

		agent.Run(t, meshJob("api", 2, listen, roots))
		apis = agent.Running(t, "default", "api", 2, 2*time.Minute)
		want = instanceIDs(apis, "api")
		harness.Eventually(t, "the frontend sidecar's endpoints after scaling down", 10*time.Second, func() error {
			got, err := endpoints(frontAdmin)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("endpoints %v, want %v", got, want)
			}
			return err
		})
	})

	t.Run("a killed allocation disappears", func(t *testing.T) {
		victim := apis[0].ID + "/api"
		if _, err := agent.Client().Allocations().Stop(&api.Allocation{ID: apis[0].ID, Namespace: "default"}, nil); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, "the killed allocation leaving the frontend's endpoints", 20*time.Second, func() error {
			got, err := endpoints(frontAdmin)
			if err == nil && slices.Contains(got, victim) {
				err = fmt.Errorf("endpoints %v still hold %s", got, victim)
			}
			return err
		})
		// Nomad replaces it; the replacement joins and serves.
		apis = agent.Running(t, "default", "api", 2, 2*time.Minute)
		ctl.WaitFor(t, "the replacement's sidecar", time.Minute, converged(3))
		if _, err := call(frontApp); err != nil {
			t.Errorf("frontend -> api after the replacement: %v", err)
		}
	})

	t.Run("a killed app task leaves the endpoints and comes back", func(t *testing.T) {
		// Nomad keeps the allocation running while the task waits out its
		// restart delay ("pending"): the instance must leave every caller's
		// endpoint set all the same, within 2 s (invariant 8).
		victim := apis[0].ID + "/api"
		pid := taskPID(t, "WEFT_INSTANCE="+victim, "NOMAD_TASK_NAME=app")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		harness.Eventually(t, "the killed task's instance leaving the frontend's endpoints within 2s", 2*time.Second, func() error {
			got, err := endpoints(frontAdmin)
			if err == nil && slices.Contains(got, victim) {
				err = fmt.Errorf("endpoints %v still hold %s", got, victim)
			}
			return err
		})
		t.Logf("the instance of the killed app task left the frontend's endpoints %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
		harness.Eventually(t, "the restarted task's instance back in the frontend's endpoints", time.Minute, func() error {
			got, err := endpoints(frontAdmin)
			if err == nil && !slices.Contains(got, victim) {
				err = fmt.Errorf("endpoints %v lack %s", got, victim)
			}
			return err
		})
		t.Logf("back %v after SIGKILL (Nomad's restart delay)", time.Since(killed).Round(time.Millisecond))
	})

	t.Run("the controller restarts and resyncs from Nomad", func(t *testing.T) {
		ctl = ctl.Restart()
		s := ctl.WaitFor(t, "every instance back from Nomad, every sidecar reconnected", time.Minute, converged(3))
		var ids []string
		for _, in := range s.Instances {
			ids = append(ids, in.ID)
		}
		slices.Sort(ids)
		want := append(instanceIDs(apis, "api"), front.ID+"/frontend")
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("instances after the restart %v, want %v", ids, want)
		}
		harness.Eventually(t, "frontend -> api after the restart", 20*time.Second, func() error { _, err := call(frontApp); return err })
	})

	t.Run("another job's workload identity is refused", func(t *testing.T) {
		// The frontend sidecar's own identity, presented for an api
		// instance: the controller must not issue it an api certificate.
		jwt, err := os.ReadFile(filepath.Join(agent.Dir, "data", "alloc", front.ID, "weft-proxy", "secrets", "nomad_token"))
		if err != nil {
			t.Fatalf("reading the frontend sidecar's identity: %v", err)
		}
		forged := string(jwt)
		if i := strings.LastIndex(forged, "."); i > 0 {
			forged = forged[:i+1] + "AAAA" + forged[i+5:]
		}
		for _, tt := range []struct{ name, instance, cred string }{
			{"the frontend's identity for an api instance", apis[0].ID + "/api", string(jwt)},
			{"the frontend's identity with a forged signature", front.ID + "/frontend", forged},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p := harness.Start(t, "weft-proxy", exec.Command(filepath.Join(binDir, "weft-proxy"), "--instance", tt.instance,
					"--controller", listen, "--trust-bundle", roots, "--admin", harness.FreeAddr(t),
					"--credential-adapter", "nomad", "--credential-env", "STOLEN"), harness.Options{Env: []string{"STOLEN=" + tt.cred}})
				select {
				case <-p.Exited():
					if st := p.Cmd.ProcessState; st.Success() || !strings.Contains(p.Out.String(), "refused the nomad credential") {
						t.Errorf("weft-proxy with %s: exit %v, log:\n%s\nwant a refusal", tt.name, st, p.Out)
					}
				case <-time.After(30 * time.Second):
					t.Errorf("weft-proxy with %s still runs after 30s; log:\n%s", tt.name, p.Out)
				}
			})
		}
	})
}

// taskPID finds the process of a Nomad raw_exec task by its environment:
// the one process whose environ holds every entry of want.
func taskPID(t *testing.T, want ...string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		all := true
		for _, w := range want {
			all = all && slices.Contains(vars, w)
		}
		if all {
			if found != 0 {
				t.Fatalf("two processes with %v: %d and %d", want, found, pid)
			}
			found = pid
		}
	}
	if found == 0 {
		t.Fatalf("no process with %v", want)
	}
	return found
}
