package nomad

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
    }
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
		filepath.Join(binDir, "weft-proxy"), filepath.Join(binDir, "weft-demo-app"), o.group)
}

func port(a *api.AllocationListStub, label string) int {
	for _, p := range a.AllocatedResources.Shared.Ports {
		if p.Label == label {
			return p.Value
		}
	}
	return 0
}

type callResult struct {
	Service  string `json:"service"`
	Status   int    `json:"status"`
	Response struct {
		Service  string `json:"service"`
		Instance string `json:"instance"`
		Caller   string `json:"caller"`
	} `json:"response"`
}

// call asks the frontend app (directly, on its app port) to call its
// upstream api through its sidecar.
func call(appAddr string) (*callResult, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + appAddr + "/call/api")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var r callResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", b, err)
	}
	return &r, nil
}

// endpoints returns the instance IDs of the api endpoints in a sidecar's
// applied configuration.
func endpoints(adminAddr string) ([]string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + adminAddr + "/config")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var cu struct {
		Config struct {
			Upstreams []struct {
				Service   string `json:"service"`
				Endpoints []struct {
					InstanceID string `json:"instanceId"`
				} `json:"endpoints"`
			} `json:"upstreams"`
		} `json:"config"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cu); err != nil {
		return nil, err
	}
	var ids []string
	for _, u := range cu.Config.Upstreams {
		if u.Service == "api" {
			for _, e := range u.Endpoints {
				ids = append(ids, e.InstanceID)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func instanceIDs(allocs []*api.AllocationListStub, service string) []string {
	var ids []string
	for _, a := range allocs {
		ids = append(ids, a.ID+"/"+service)
	}
	slices.Sort(ids)
	return ids
}

func poll(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	if err := nomadtest.Poll(context.Background(), timeout, 50*time.Millisecond, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestNomadMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policy")
	os.MkdirAll(policyDir, 0o755)
	if err := os.WriteFile(filepath.Join(policyDir, "mesh.hcl"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := harness.FreeAddr(t)
	ctl := startController(t, filepath.Join(dir, "weft"), listen, harness.FreeAddr(t),
		"--policy-dir", policyDir, "--adapter", "nomad="+agent.Addr,
		"--adapter-option", "nomad.token_file="+agent.TokenFile(t))
	roots := filepath.Join(dir, "weft", "ca", "ca.crt")
	poll(t, "the controller's CA", 30*time.Second, func() error { _, err := os.Stat(roots); return err })

	agent.Run(t, meshJob("api", 2, listen, roots))
	agent.Run(t, meshJob("frontend", 1, listen, roots, "api"))
	apis := agent.Running(t, "default", "api", 2, 2*time.Minute)
	front := agent.Running(t, "default", "frontend", 1, 2*time.Minute)[0]
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	frontAdmin := fmt.Sprintf("127.0.0.1:%d", port(front, "admin"))
	ctl.WaitFor(t, "three instances with sidecars that acknowledged their config", time.Minute, converged(3))

	t.Run("traffic flows over mTLS", func(t *testing.T) {
		var r *callResult
		poll(t, "frontend -> api through the sidecars", 30*time.Second, func() (err error) {
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
		poll(t, "both api instances answering", 20*time.Second, func() error {
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
		poll(t, "the frontend sidecar's endpoints for api within 2s of Nomad finding the third healthy", 2*time.Second, func() error {
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
		poll(t, "the frontend sidecar's endpoints after scaling down", 10*time.Second, func() error {
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
		poll(t, "the killed allocation leaving the frontend's endpoints", 20*time.Second, func() error {
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
		poll(t, "the killed task's instance leaving the frontend's endpoints within 2s", 2*time.Second, func() error {
			got, err := endpoints(frontAdmin)
			if err == nil && slices.Contains(got, victim) {
				err = fmt.Errorf("endpoints %v still hold %s", got, victim)
			}
			return err
		})
		t.Logf("the instance of the killed app task left the frontend's endpoints %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
		poll(t, "the restarted task's instance back in the frontend's endpoints", time.Minute, func() error {
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
		poll(t, "frontend -> api after the restart", 20*time.Second, func() error { _, err := call(frontApp); return err })
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
				cmd := exec.Command(filepath.Join(binDir, "weft-proxy"), "--instance", tt.instance,
					"--controller", listen, "--trust-bundle", roots, "--admin", harness.FreeAddr(t),
					"--credential-adapter", "nomad", "--credential-env", "STOLEN")
				cmd.Env = append(os.Environ(), "STOLEN="+tt.cred)
				out := &harness.SyncBuffer{}
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				select {
				case err := <-done:
					if err == nil || !strings.Contains(out.String(), "refused the nomad credential") {
						t.Errorf("weft-proxy with %s: exit %v, log:\n%s\nwant a refusal", tt.name, err, out)
					}
				case <-time.After(30 * time.Second):
					cmd.Process.Kill()
					<-done
					t.Errorf("weft-proxy with %s still runs after 30s; log:\n%s", tt.name, out)
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
