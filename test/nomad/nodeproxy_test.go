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
	"net"
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

// The node proxy on Nomad (docs/deployment-models.md): frontend, rogue
// and store have sidecars; api's instances chose node mode (tag
// weft_proxy_mode=node, no sidecar task: examples/nomad/api-node.nomad.hcl)
// and are served by the one weft-proxy of the node-proxy system job
// (examples/nomad/node-proxy.nomad.hcl), which joins with its own
// workload identity. frontend may call api, api may call store; rogue
// may call nothing.
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
  upstream "store" {
    local_port = 9003
  }
}

service "store" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "store"
  }
}

intention "frontend" "api" {
  action = "allow"
}

intention "api" "store" {
  action = "allow"
}
`

// runNodeModeExamples runs examples/nomad/node-proxy.nomad.hcl (the
// system job) and api-node.nomad.hcl (api in node mode) as the README
// says, with this test's controller.
func runNodeModeExamples(t *testing.T, e *meshEnv) {
	t.Helper()
	examples, err := filepath.Abs("../../examples/nomad")
	if err != nil {
		t.Fatal(err)
	}
	c := e.agent.Client()
	runExample(t, c, filepath.Join(examples, "node-proxy.nomad.hcl"), map[string]string{
		"weft_bin": binDir, "controller": e.listen, "trust_bundle": e.roots,
	})
	runExample(t, c, filepath.Join(examples, "api-node.nomad.hcl"), map[string]string{"weft_bin": binDir})
}

// scaleAPI sets the api group's count, as `nomad job scale api N`, once
// the job's last deployment is done.
func scaleAPI(t *testing.T, e *meshEnv, n int) {
	t.Helper()
	waitDeployment(t, e.agent.Client(), "api", "successful") // Nomad refuses to scale during one
	if _, _, err := e.agent.Client().Jobs().Scale("api", "api", &n, "node-proxy test", false, nil, nil); err != nil {
		t.Fatalf("scaling api to %d: %v", n, err)
	}
}

// waitMesh waits (bounded, printed) until want instances are known,
// passing, and acknowledged by their proxies.
func waitMesh(t *testing.T, e *meshEnv, what string, want int) {
	t.Helper()
	took := harness.Eventually(t, what, 2*time.Minute, func() error {
		s, err := e.ctl.Status()
		if err != nil {
			return err
		}
		if !converged(want)(s) {
			return fmt.Errorf("%d instances, %d streams, want %d all acknowledged and passing", len(s.Instances), len(s.Sidecars), want)
		}
		return nil
	})
	t.Logf("%s: after %v", what, took.Round(time.Millisecond))
}

func TestNomadNodeProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller, a node proxy and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	e := startMesh(t, agent, nodeProxyPolicy)

	runNodeModeExamples(t, e)
	agent.Running(t, "default", "weft-node-proxy", 1, 2*time.Minute)
	agent.Run(t, meshJob("frontend", 1, e.listen, e.roots, "api"))
	agent.Run(t, meshJob("rogue", 1, e.listen, e.roots, "api"))
	agent.Run(t, meshJob("store", 1, e.listen, e.roots))
	apis := agent.Running(t, "default", "api", 2, 2*time.Minute)
	front := agent.Running(t, "default", "frontend", 1, 2*time.Minute)[0]
	rogue := agent.Running(t, "default", "rogue", 1, 2*time.Minute)[0]
	store := agent.Running(t, "default", "store", 1, 2*time.Minute)[0]
	waitMesh(t, e, "2 node-mode api instances (node proxy), frontend, rogue and store (sidecars) acknowledged", 5)
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
		// Each api instance (node proxy outbound) -> store: the callee
		// sees api's identity, not a node's.
		for _, al := range apis {
			app := fmt.Sprintf("127.0.0.1:%d", port(al, "app"))
			a := waitUpstream(t, "api "+al.ID[:8]+" -> store", app, "/call/store")
			if a.Status != 200 || a.callee.Service != "store" || a.callee.Caller != id("api") {
				t.Errorf("api %s -> store: status %d, callee %+v; want 200 from store seeing %s: %s", al.ID[:8], a.Status, a.callee, id("api"), a.body)
			}
		}
		// And the two hops: frontend -> api (node proxy) -> store.
		a = waitUpstream(t, "frontend -> api -> store", frontApp, "/call/api/call/store")
		var hop2 struct {
			Status   int
			Response struct{ Service, Caller string }
		}
		if a.Status == 200 {
			if err := json.Unmarshal(a.Response, &hop2); err != nil {
				t.Fatalf("decoding api's answer: %v: %s", err, a.body)
			}
		}
		if a.Status != 200 || hop2.Status != 200 || hop2.Response.Service != "store" || hop2.Response.Caller != id("api") {
			t.Errorf("frontend -> api -> store: status %d, want 200 with store seeing %s: %s", a.Status, id("api"), a.body)
		}
	})

	t.Run("memory: one node proxy against sidecars", func(t *testing.T) {
		np := procRSS(t, proxyPID)
		side := procRSS(t, sidecarPID(t, front.ID+"/frontend"))
		t.Logf("RSS: node proxy serving 2 api instances %.1f MiB; frontend's sidecar (1 instance) %.1f MiB, so 2 sidecars ~%.1f MiB", np, side, 2*side)
		if np >= 2*side {
			t.Errorf("the node proxy serving 2 instances takes %.1f MiB, no less than the 2 sidecars it replaces (%.1f MiB)", np, 2*side)
		}
	})

	// The node proxy's own workload identity and a sidecar's, read as the
	// tasks have them (identity { env = true }).
	nodeJWT := processJWT(t, proxyPID)
	sideJWT := processJWT(t, sidecarPID(t, front.ID+"/frontend"))
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
		for _, inst := range []string{front.ID + "/frontend", store.ID + "/store"} {
			if err := joinAs(mesh, inst, nodeJWT); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "did not choose node mode") {
				t.Errorf("the node proxy's identity for %s (sidecar mode, same node): %v, want PermissionDenied (did not choose node mode)", inst, err)
			}
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
		scaleAPI(t, e, 3)
		apis = agent.Running(t, "default", "api", 3, 2*time.Minute)
		waitMesh(t, e, "a third api instance served by the node proxy", 6)
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
		np := procRSS(t, proxyPID)
		t.Logf("RSS: node proxy serving 3 api instances %.1f MiB", np)

		scaleAPI(t, e, 2)
		three := apis
		apis = agent.Running(t, "default", "api", 2, 2*time.Minute)
		waitMesh(t, e, "back to 2 api instances", 5)
		if pid := nodeProxyPID(t, e.listen); pid != proxyPID {
			t.Fatalf("the node proxy's pid changed from %d to %d: it restarted", proxyPID, pid)
		}
		// The node proxy stopped serving the instance that left: its mesh
		// port no longer takes connections.
		for _, al := range three {
			if slices.Contains(instanceIDs(apis, "api"), al.ID+"/api") {
				continue
			}
			mesh := fmt.Sprintf("127.0.0.1:%d", port(al, "mesh"))
			took := harness.Eventually(t, "the node proxy closes the mesh listener of the instance that left", 30*time.Second, func() error {
				c, err := net.DialTimeout("tcp", mesh, time.Second)
				if err != nil {
					return nil
				}
				c.Close()
				return fmt.Errorf("%s still takes connections", mesh)
			})
			t.Logf("the mesh listener of %s closed %v after the scale-down converged", al.ID[:8], took.Round(time.Millisecond))
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

// procRSS reads a process's resident set (VmRSS) in MiB.
func procRSS(t testing.TB, pid int) float64 {
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

// processJWT reads the workload identity Nomad gave a task, from its
// process's initial environment (identity { env = true } sets
// NOMAD_TOKEN).
func processJWT(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("reading the environment of pid %d: %v", pid, err)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, "NOMAD_TOKEN="); ok && v != "" {
			return v
		}
	}
	t.Fatalf("pid %d has no NOMAD_TOKEN in its environment", pid)
	return ""
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
	return joinWith(c, &meshapi.JoinRequest{InstanceId: instance, CredentialAdapter: "nomad", Credential: credential})
}

// joinWith sends req (a join token or a credential) with a CSR for a new
// key, thrown away, as a proxy joins.
func joinWith(c meshapi.MeshClient, req *meshapi.JoinRequest) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	req.CsrDer, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = c.Join(ctx, req)
	return err
}
