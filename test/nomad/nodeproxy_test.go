package nomad

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// The node proxy on Nomad (docs/deployment-models.md): frontend and rogue
// have sidecars; api's instances chose node mode (tag
// weft_proxy_mode=node, no sidecar task) and are served by the one
// weft-proxy of the node-proxy system job, which joins with its own
// workload identity.
const nodeProxyPolicy = `mesh {
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

service "rogue" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "rogue"
  }
  upstream "api" {
    local_port = 9002
  }
}

service "api" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "api"
  }
  upstream "frontend" {
    local_port = 9003
  }
}

intention "frontend" "api" {
  action = "allow"
}

intention "api" "frontend" {
  action = "allow"
}
`

// nodeProxySystemJob is examples/nomad/node-proxy.nomad.hcl's shape: a
// system job marked weft_proxy = "node", its task a weft-proxy that
// discovers its node's instances with its own workload identity.
func nodeProxySystemJob(controller, roots string) string {
	return fmt.Sprintf(`job "weft-node-proxy" {
  type = "system"
  meta {
    weft_proxy = "node"
  }
  group "proxy" {
    task "weft-proxy" {
      driver = "raw_exec"
      identity {
        env  = true
        file = true
      }
      config {
        command = %[3]q
        args = ["--node", "${node.unique.name}", "--credential-adapter", "nomad", "--credential-env", "NOMAD_TOKEN",
                "--controller", %[1]q, "--trust-bundle", %[2]q, "--discover-interval", "300ms"]
      }
      kill_timeout = "3s"
      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
`, controller, roots, filepath.Join(binDir, "weft-proxy"))
}

// nodeModeAPIJob is api with count instances in node mode: the app task
// alone, its service tagged weft_proxy_mode=node, a mesh port for the
// node proxy's inbound and an upstream port for its outbound.
func nodeModeAPIJob(count int) string {
	return fmt.Sprintf(`job "api" {
  group "api" {
    count = %[1]d
    network {
      port "app" {}
      port "mesh" {}
      port "upstream_frontend" {}
    }
    service {
      name     = "api"
      provider = "nomad"
      port     = "app"
      tags     = ["weft_proxy_mode=node"]
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = %[2]q
      }
      env {
        HOST              = "127.0.0.1"
        PORT              = "${NOMAD_PORT_app}"
        WEFT_SERVICE      = "api"
        WEFT_INSTANCE     = "${NOMAD_ALLOC_ID}/api"
        UPSTREAM_FRONTEND = "http://127.0.0.1:${NOMAD_PORT_upstream_frontend}"
      }
      kill_timeout = "3s"
      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
`, count, filepath.Join(binDir, "weft-demo-app"))
}

func TestNomadNodeProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller, a node proxy and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	e := startMesh(t, agent, nodeProxyPolicy)

	agent.Run(t, nodeProxySystemJob(e.listen, e.roots))
	proxyAlloc := agent.Running(t, "default", "weft-node-proxy", 1, 2*time.Minute)[0]
	agent.Run(t, nodeModeAPIJob(2))
	agent.Run(t, meshJob("frontend", 1, e.listen, e.roots, "api"))
	agent.Run(t, meshJob("rogue", 1, e.listen, e.roots, "api"))
	apis := agent.Running(t, "default", "api", 2, 2*time.Minute)
	front := agent.Running(t, "default", "frontend", 1, 2*time.Minute)[0]
	rogue := agent.Running(t, "default", "rogue", 1, 2*time.Minute)[0]
	took := harness.Eventually(t, "2 node-mode api instances (node proxy), frontend and rogue (sidecars) acknowledged", 2*time.Minute, func() error {
		s, err := e.ctl.Status()
		if err != nil {
			return err
		}
		if !converged(4)(s) {
			return fmt.Errorf("%d instances, %d streams, not all acknowledged and passing", len(s.Instances), len(s.Sidecars))
		}
		return nil
	})
	t.Logf("mesh converged %v after the jobs ran", took.Round(time.Millisecond))
	proxyPID := nodeProxyPID(t, e.listen)
	frontApp := fmt.Sprintf("127.0.0.1:%d", port(front, "app"))
	rogueApp := fmt.Sprintf("127.0.0.1:%d", port(rogue, "app"))
	id := func(svc string) string { return "spiffe://weft.test/ns/default/svc/" + svc }

	t.Run("calls through the node proxy carry each instance's identity, intentions enforced", func(t *testing.T) {
		// frontend (sidecar) -> api (node proxy inbound): allowed, both
		// api instances answer, each seeing frontend's identity.
		seen := map[string]bool{}
		harness.Eventually(t, "frontend -> api through the node proxy, both instances", 30*time.Second, func() error {
			a, err := upstreamCall(frontApp, "/call/api")
			if err != nil {
				return err
			}
			if a.Status != 200 || a.callee.Service != "api" || a.callee.Caller != id("frontend") {
				return fmt.Errorf("upstream status %d, callee %+v: want 200 from api seeing %s", a.Status, a.callee, id("frontend"))
			}
			seen[a.callee.Instance] = true
			if len(seen) < 2 {
				return fmt.Errorf("answered by %v so far", seen)
			}
			return nil
		})
		if want := instanceIDs(apis, "api"); !seen[want[0]] || !seen[want[1]] {
			t.Errorf("answered by %v, want %v", seen, want)
		}
		// rogue (sidecar, no intention) -> api: refused by the node proxy's
		// inbound for api, naming the caller.
		a := waitUpstream(t, "rogue -> api", rogueApp, "/call/api")
		if a.Status != 403 || !strings.Contains(a.body, "svc/rogue may not ") {
			t.Errorf("rogue -> api: upstream status %d, want 403 naming svc/rogue: %s", a.Status, a.body)
		}
		// Each api instance (node proxy outbound) -> frontend: the callee
		// sees api's identity, not a node's.
		for _, al := range apis {
			app := fmt.Sprintf("127.0.0.1:%d", port(al, "app"))
			a := waitUpstream(t, "api "+al.ID[:8]+" -> frontend", app, "/call/frontend")
			if a.Status != 200 || a.callee.Service != "frontend" || a.callee.Caller != id("api") {
				t.Errorf("api %s -> frontend: status %d, callee %+v; want 200 from frontend seeing %s: %s", al.ID[:8], a.Status, a.callee, id("api"), a.body)
			}
		}
	})

	t.Run("memory: one node proxy against sidecars", func(t *testing.T) {
		np := rssMiB(t, proxyPID)
		side := rssMiB(t, sidecarPID(t, front.ID+"/frontend"))
		t.Logf("RSS: node proxy serving 2 api instances %.1f MiB; frontend's sidecar (1 instance) %.1f MiB, so 2 sidecars ~%.1f MiB", np, side, 2*side)
	})

	// The node proxy's own workload identity and a sidecar's, read as the
	// tasks have them (identity { file = true }).
	nodeJWT := taskJWT(t, agent, proxyAlloc.ID, "weft-proxy")
	sideJWT := taskJWT(t, agent, front.ID, "weft-proxy")
	mesh := meshClient(t, e)

	t.Run("what one node allows", func(t *testing.T) {
		ids, err := nodeInstances(mesh, nodeJWT)
		if err != nil {
			t.Fatalf("NodeInstances with the node proxy's identity: %v", err)
		}
		// The node's node-mode instances, not frontend's nor rogue's
		// (same node, sidecar mode).
		if want := instanceIDs(apis, "api"); !slices.Equal(ids, want) {
			t.Errorf("NodeInstances = %v, want api's instances %v", ids, want)
		}
		if err := joinAs(mesh, front.ID+"/frontend", nodeJWT); status.Code(err) != codes.PermissionDenied {
			t.Errorf("the node proxy's identity for frontend (sidecar mode): %v, want PermissionDenied", err)
		}
	})

	t.Run("an ordinary sidecar's identity cannot claim node mode", func(t *testing.T) {
		if _, err := nodeInstances(mesh, sideJWT); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not a node proxy") {
			t.Errorf("NodeInstances with frontend's sidecar identity: %v, want PermissionDenied (not a node proxy)", err)
		}
		if err := joinAs(mesh, apis[0].ID+"/api", sideJWT); status.Code(err) != codes.PermissionDenied {
			t.Errorf("Join for an api instance with frontend's sidecar identity: %v, want PermissionDenied", err)
		}
		forged := nodeJWT[:strings.LastIndex(nodeJWT, ".")+1] + "AAAA" + nodeJWT[strings.LastIndex(nodeJWT, ".")+5:]
		if _, err := nodeInstances(mesh, forged); status.Code(err) != codes.PermissionDenied {
			t.Errorf("NodeInstances with a forged signature: %v, want PermissionDenied", err)
		}
	})

	t.Run("instances come and go without restarting the node proxy", func(t *testing.T) {
		agent.Run(t, nodeModeAPIJob(3))
		apis = agent.Running(t, "default", "api", 3, 2*time.Minute)
		took := harness.Eventually(t, "the third api instance served by the node proxy", time.Minute, func() error {
			s, err := e.ctl.Status()
			if err != nil {
				return err
			}
			if !converged(5)(s) {
				return fmt.Errorf("%d instances, %d streams, not all acknowledged and passing", len(s.Instances), len(s.Sidecars))
			}
			return nil
		})
		t.Logf("third instance served %v after Nomad ran it", took.Round(time.Millisecond))
		if pid := nodeProxyPID(t, e.listen); pid != proxyPID {
			t.Fatalf("the node proxy's pid changed from %d to %d: it restarted", proxyPID, pid)
		}
		seen := map[string]bool{}
		harness.Eventually(t, "frontend reaches all 3 api instances", 30*time.Second, func() error {
			a, err := upstreamCall(frontApp, "/call/api")
			if err != nil {
				return err
			}
			if a.Status == 200 {
				seen[a.callee.Instance] = true
			}
			if len(seen) < 3 {
				return fmt.Errorf("answered by %v so far", seen)
			}
			return nil
		})
		np := rssMiB(t, proxyPID)
		t.Logf("RSS: node proxy serving 3 api instances %.1f MiB", np)

		agent.Run(t, nodeModeAPIJob(2))
		apis = agent.Running(t, "default", "api", 2, 2*time.Minute)
		harness.Eventually(t, "back to 2 api instances", time.Minute, func() error {
			s, err := e.ctl.Status()
			if err != nil {
				return err
			}
			if !converged(4)(s) {
				return fmt.Errorf("%d instances, %d streams", len(s.Instances), len(s.Sidecars))
			}
			return nil
		})
		if pid := nodeProxyPID(t, e.listen); pid != proxyPID {
			t.Fatalf("the node proxy's pid changed from %d to %d: it restarted", proxyPID, pid)
		}
		a := waitUpstream(t, "frontend -> api after the scale-down", frontApp, "/call/api")
		if a.Status != 200 {
			t.Errorf("frontend -> api after the scale-down: %d: %s", a.Status, a.body)
		}
	})

	t.Run("a stopped node proxy's identity is refused", func(t *testing.T) {
		agent.Stop(t, "default", "weft-node-proxy")
		took := harness.Eventually(t, "the stopped node proxy's identity refused", time.Minute, func() error {
			if _, err := nodeInstances(mesh, nodeJWT); status.Code(err) != codes.PermissionDenied {
				return fmt.Errorf("NodeInstances: %v", err)
			}
			if err := joinAs(mesh, apis[0].ID+"/api", nodeJWT); status.Code(err) != codes.PermissionDenied {
				return fmt.Errorf("Join: %v", err)
			}
			return nil
		})
		t.Logf("refused %v after the stop", took.Round(time.Millisecond))
	})
}

// demoCall is the demo app's answer to /call/...: the upstream's status
// and, for a 200, the callee's JSON.
type demoCall struct {
	Status   int             `json:"status"`
	Response json.RawMessage `json:"response"`
	body     string
	callee   struct{ Service, Instance, Caller string }
}

func upstreamCall(app, path string) (*demoCall, error) {
	_, b, err := harness.Get(context.Background(), "http://"+app+path)
	if err != nil {
		return nil, err
	}
	a := &demoCall{body: b}
	if err := json.Unmarshal([]byte(b), a); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", b, err)
	}
	if a.Status == 200 {
		if err := json.Unmarshal(a.Response, &a.callee); err != nil {
			return nil, fmt.Errorf("decoding the callee's answer %s: %w", a.Response, err)
		}
	}
	return a, nil
}

// waitUpstream calls until the upstream answers other than "no endpoint
// yet" (503 or no status), bounded.
func waitUpstream(t *testing.T, what, app, path string) *demoCall {
	t.Helper()
	var a *demoCall
	harness.Eventually(t, what, 30*time.Second, func() (err error) {
		if a, err = upstreamCall(app, path); err == nil && (a.Status == 503 || a.Status == 0) {
			err = fmt.Errorf("upstream status %d: %s", a.Status, a.body)
		}
		return err
	})
	return a
}

// weftProxies lists the weft-proxy processes whose command line holds
// every one of args, by pid.
func weftProxies(args ...string) map[int][]string {
	out := map[int][]string{}
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(cmd) == 0 || filepath.Base(cmd[0]) != "weft-proxy" {
			continue
		}
		all := true
		for _, a := range args {
			all = all && slices.Contains(cmd, a)
		}
		if all {
			out[pid] = cmd
		}
	}
	return out
}

// nodeProxyPID is the pid of the one node proxy of the controller at
// listen (other tests' proxies name other controllers).
func nodeProxyPID(t *testing.T, listen string) int {
	t.Helper()
	ps := weftProxies("--node", "--controller", listen)
	if len(ps) != 1 {
		t.Fatalf("%d node proxies of controller %s, want 1: %v", len(ps), listen, ps)
	}
	for pid := range ps {
		return pid
	}
	return 0
}

func sidecarPID(t *testing.T, instance string) int {
	t.Helper()
	ps := weftProxies("--instance", instance)
	if len(ps) != 1 {
		t.Fatalf("%d sidecars of %s, want 1", len(ps), instance)
	}
	for pid := range ps {
		return pid
	}
	return 0
}

// rssMiB reads a process's resident set (VmRSS) in MiB.
func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the memory of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("parsing VmRSS %q: %v", v, err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// taskJWT reads a task's workload identity from its secrets directory
// (identity { file = true }).
func taskJWT(t *testing.T, agent *nomadtest.Agent, allocID, task string) string {
	t.Helper()
	p := filepath.Join(agent.Dir, "data", "alloc", allocID, task, "secrets", "nomad_token")
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("reading the workload identity of %s/%s at %s: %v", allocID, task, p, err)
	}
	return strings.TrimSpace(string(b))
}

// meshClient is a client of the controller's sidecar API over
// server-authenticated TLS, as a proxy joins.
func meshClient(t *testing.T, e *meshEnv) meshapi.MeshClient {
	t.Helper()
	pem, err := os.ReadFile(e.roots)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	host, _, _ := strings.Cut(e.listen, ":")
	cc, err := grpc.NewClient("passthrough:///"+e.listen, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: host})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return meshapi.NewMeshClient(cc)
}

func nodeInstances(c meshapi.MeshClient, jwt string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := c.NodeInstances(ctx, &meshapi.NodeInstancesRequest{CredentialAdapter: "nomad", Credential: jwt})
	if err != nil {
		return nil, err
	}
	return r.InstanceIds, nil
}

// joinAs asks for instance's certificate with credential, as a proxy
// joining with a Nomad workload identity; the CSR's key is thrown away.
func joinAs(c meshapi.MeshClient, instance, credential string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = c.Join(ctx, &meshapi.JoinRequest{InstanceId: instance, CsrDer: csr, CredentialAdapter: "nomad", Credential: credential})
	return err
}
