package nomad

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(harness.Main(m, harness.MeshBinaries(nil), func(dir string) error {
		binDir = dir
		_, err := nomadtest.Binary()
		return err
	}))
}

// startController starts a `weft controller` running the nomad adapter,
// with NOMAD_TOKEN empty in its environment.
func startController(t *testing.T, dataDir, listen, admin string, args ...string) *harness.Controller {
	t.Helper()
	o := harness.WeftController(binDir, dataDir, listen, admin, args...)
	o.Process = harness.Options{Env: []string{"NOMAD_TOKEN="}}
	return harness.StartController(t, o)
}

// meshEnv is a Nomad agent with a controller running the nomad adapter.
type meshEnv struct {
	agent     *nomadtest.Agent
	ctl       *harness.Controller
	listen    string
	roots     string
	policyDir string
}

// startMesh starts a controller with the nomad adapter on agent (its
// management token in a file), policy in its policy directory
// (harness.WritePolicy) and its data under a temporary directory's weft/;
// args follow its flags. It returns once the controller's CA root (roots,
// the sidecars' trust bundle) is written.
func startMesh(t *testing.T, agent *nomadtest.Agent, policy string, args ...string) *meshEnv {
	t.Helper()
	e := &meshEnv{agent: agent}
	dir := t.TempDir()
	e.policyDir = harness.WritePolicy(t, dir, policy)
	e.listen = harness.FreeAddr(t)
	e.ctl = startController(t, filepath.Join(dir, "weft"), e.listen, harness.FreeAddr(t),
		append([]string{"--policy-dir", e.policyDir, "--adapter", "nomad=" + e.agent.Addr,
			"--adapter-option", "nomad.token_file=" + e.agent.TokenFile(t)}, args...)...)
	e.roots = e.ctl.WaitCACert(t)
	return e
}

// runFrontendAPI runs apiJob, the api's job file with n allocations, and
// the frontend's job (one allocation, calling api); it waits until they
// run and the mesh has converged (n+1 instances, every sidecar
// acknowledged), and returns the api's allocations and the frontend's.
func (e *meshEnv) runFrontendAPI(t *testing.T, apiJob string, n int) ([]*api.AllocationListStub, *api.AllocationListStub) {
	t.Helper()
	e.agent.Run(t, apiJob)
	e.agent.Run(t, meshJob("frontend", 1, e.listen, e.roots, "api"))
	apis := e.agent.Running(t, "default", "api", n, 2*time.Minute)
	front := e.agent.Running(t, "default", "frontend", 1, 2*time.Minute)[0]
	e.ctl.WaitFor(t, fmt.Sprintf("%d api instances and the frontend with sidecars that acknowledged their config", n), time.Minute, converged(n+1))
	return apis, front
}

// setPolicy replaces the controller's policy.
func (e *meshEnv) setPolicy(t *testing.T, policy string) {
	t.Helper()
	harness.ReplaceFile(t, filepath.Join(e.policyDir, harness.PolicyFile), policy)
}

// converged: want instances known and passing (their allocations run),
// each with a sidecar that acknowledged its current configuration.
func converged(want int) func(*harness.Status) bool {
	acked := harness.Converged(want)
	return func(s *harness.Status) bool {
		if !acked(s) {
			return false
		}
		for _, in := range s.Instances {
			if in.Health != "passing" {
				return false
			}
		}
		return true
	}
}

const policy = `mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "frontend" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "frontend"
  }
  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "api"
  }
}

intention "frontend" "api" {
  action = "allow"
}
`

// meshJob is a job written by hand: the demo app and a weft-proxy
// sidecar task (prestart, sidecar) in a group with host networking and
// Nomad-allocated ports; the sidecar joins with the task's workload
// identity.
func meshJob(name string, count int, controllerAddr, roots string, upstreams ...string) string {
	return meshJobWith(jobOpts{name: name, count: count, controller: controllerAddr, roots: roots, upstreams: upstreams})
}

type jobOpts struct {
	name, controller, roots string
	count                   int
	upstreams               []string
	group                   string // more HCL in the group (update, shutdown_delay)
	version                 string // VERSION in the app's environment: a change makes a new job version
	service                 string // more HCL in the service block (a check)
}

func meshJobWith(o jobOpts) string {
	if o.group == "" {
		o.group = "    update {\n      min_healthy_time = \"1s\"\n    }"
	}
	name, count, controllerAddr, roots, upstreams := o.name, o.count, o.controller, o.roots, o.upstreams
	var ports, env strings.Builder
	fmt.Fprintf(&env, "        VERSION = %q\n", o.version)
	for _, u := range upstreams {
		label := "upstream_" + strings.ReplaceAll(u, "-", "_")
		fmt.Fprintf(&ports, "      port %q {}\n", label)
		fmt.Fprintf(&env, "        UPSTREAM_%s = \"http://127.0.0.1:${NOMAD_PORT_%s}\"\n", strings.ToUpper(strings.ReplaceAll(u, "-", "_")), label)
	}
	return fmt.Sprintf(`job %[1]q {
  group %[1]q {
    count = %[2]d
%[9]s
    network {
      port "app" {}
      port "mesh" {}
      port "admin" {}
%[5]s    }
    service {
      name     = %[1]q
      provider = "nomad"
      port     = "app"
%[10]s    }
    task "weft-proxy" {
      driver = "raw_exec"
      lifecycle {
        hook    = "prestart"
        sidecar = true
      }
      identity {
        env  = true
        file = true
      }
      config {
        command = %[7]q
        args = ["--instance", "${NOMAD_ALLOC_ID}/%[1]s", "--controller", %[3]q, "--trust-bundle", %[4]q,
                "--admin", "${NOMAD_ADDR_admin}", "--credential-adapter", "nomad", "--credential-env", "NOMAD_TOKEN"]
      }
      kill_timeout = "3s"
      resources {
        cpu    = 50
        memory = 64
      }
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = %[8]q
      }
      env {
        HOST          = "127.0.0.1"
        PORT          = "${NOMAD_PORT_app}"
        WEFT_SERVICE  = %[1]q
        WEFT_INSTANCE = "${NOMAD_ALLOC_ID}/%[1]s"
%[6]s      }
      kill_timeout = "3s"
      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
`, name, count, controllerAddr, roots, ports.String(), env.String(),
		filepath.Join(binDir, "weft-proxy"), filepath.Join(binDir, "weft-demo-app"), o.group, o.service)
}

func port(a *api.AllocationListStub, label string) int {
	for _, p := range a.AllocatedResources.Shared.Ports {
		if p.Label == label {
			return p.Value
		}
	}
	return 0
}

// call asks the frontend app (directly, on its app port) to call its
// upstream api through its sidecar.
func call(appAddr string) (*harness.DemoAnswer, error) {
	return harness.CallThrough(appAddr, "/call/api")
}

// endpoints returns the instance IDs, sorted, of the api endpoints in a
// sidecar's applied configuration.
func endpoints(adminAddr string) ([]string, error) {
	return harness.SidecarEndpoints(adminAddr, "api")
}

// waitEndpoints waits, within bound, until the sidecar at adminAddr holds
// exactly want (sorted instance IDs) as its api endpoints, and logs how
// long after since that was.
func waitEndpoints(t *testing.T, adminAddr, what string, bound time.Duration, since time.Time, want []string) {
	t.Helper()
	harness.Eventually(t, what, bound, func() error {
		got, err := endpoints(adminAddr)
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("endpoints %v, want %v", got, want)
		}
		return err
	})
	t.Logf("%s: after %v", what, time.Since(since).Round(time.Millisecond))
}

// setAppHealth makes the demo app at appAddr fail or pass its /healthz
// (verb "fail" or "pass"), called on its own port, not through the mesh
// (the app refuses that), and returns when it did.
func setAppHealth(t *testing.T, appAddr, verb string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+appAddr+"/healthz/"+verb, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /healthz/%s to the app at %s: %v", verb, appAddr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /healthz/%s to the app at %s: %s", verb, appAddr, resp.Status)
	}
	return time.Now()
}

func instanceIDs(allocs []*api.AllocationListStub, service string) []string {
	var ids []string
	for _, a := range allocs {
		ids = append(ids, a.ID+"/"+service)
	}
	slices.Sort(ids)
	return ids
}

// waitDeployment waits for the deployment of the job's current version to
// reach status.
func waitDeployment(t *testing.T, c *api.Client, job, status string) {
	t.Helper()
	j, _, err := c.Jobs().Info(job, nil)
	if err != nil {
		t.Fatalf("reading job %s: %v", job, err)
	}
	harness.Eventually(t, "job "+job+"'s deployment "+status, 2*time.Minute, func() error {
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
