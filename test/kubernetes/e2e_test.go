package kubernetes

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// The e2e mesh runs the example's own policy (web -> api -> store, default
// deny), so the example is proven along with the adapter.
func examplePolicy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/kubernetes/policy/policy.hcl")
	if err != nil {
		t.Fatalf("reading the example policy: %v", err)
	}
	return string(b)
}

// trustDomain is the example policy's.
const trustDomain = "weft.example"

// store runs outside Kubernetes, under the local adapter.
const workloads = `
service "store" {
  command = "DEMO_APP"
  port    = 8080
}
`

// Convergence bound the issue sets.
const convergeWithin = 2 * time.Second

// TestKubernetesMesh walks one mesh, pods on a real kube-apiserver plus a
// local-adapter service, through the Kubernetes promises, in order.
func TestKubernetesMesh(t *testing.T) {
	c := kubetest.Start(t)
	ns := "shop" // the example's meshed namespace (examples/kubernetes/app.yaml)
	c.Namespace(ns, "web", "api")
	c.CreateService(ns, "web", map[string]string{"app": "web"}, appPort)
	c.CreateService(ns, "api", map[string]string{"app": "api"}, appPort)
	m := newMesh(t, c, ns, examplePolicy(t), workloads, 1)

	web := m.runPod("web", "web-0")
	api0 := m.runPod("api", "api-0")
	api1 := m.runPod("api", "api-1")
	m.waitEndpoints(web, "api", []string{m.id("api-0"), m.id("api-1")}, 10*time.Second)
	if path := os.Getenv("WEFT_K8S_RECORD"); path != "" {
		// go test ./test/kubernetes -run TestKubernetesMesh with
		// WEFT_K8S_RECORD=$PWD/adapters/kubernetes/testdata/recorded.yaml
		// refreshes the adapter's recorded fixture.
		must(t, c.Record(ns, path, "Recorded by test/kubernetes (WEFT_K8S_RECORD) from a real kube-apiserver "+kubetest.Version+": three meshed pods, web-0 and api-0/1, ready."))
	}

	t.Run("PodsTalkOverMTLS", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 20 && len(seen) < 2; i++ {
			out, err := m.call(web, "/call/api")
			if err != nil {
				t.Fatalf("web -> api: %v", err)
			}
			resp, _ := out["response"].(map[string]any)
			if caller, _ := resp["caller"].(string); caller != "spiffe://"+trustDomain+"/ns/"+ns+"/svc/web" {
				t.Fatalf("api saw caller %q, want web's SPIFFE ID (verified over mTLS); answer %v", caller, out)
			}
			inst, _ := resp["instance"].(string)
			seen[inst] = true
		}
		if len(seen) < 2 {
			t.Errorf("20 calls reached only %v, want both api pods", seen)
		}
		// Default deny holds for pods: api has no intention to call web.
		if out, err := m.call(api0, "/call/api"); err == nil {
			t.Errorf("api -> api passed without an intention: %v", out)
		}
	})

	t.Run("CrossSchedulerPodToLocalService", func(t *testing.T) {
		out, err := m.call(web, "/call/api/call/store")
		if err != nil {
			t.Fatalf("web -> api (pod) -> store (local adapter): %v", err)
		}
		inner, _ := out["response"].(map[string]any)
		store, _ := inner["response"].(map[string]any)
		if store["service"] != "store" || store["caller"] != "spiffe://"+trustDomain+"/ns/"+ns+"/svc/api" {
			t.Errorf("store answered %v, want service store called by api's identity", store)
		}
	})

	t.Run("ScalingConvergesWithin2s", func(t *testing.T) {
		// Scale up: the new pods' sidecars join while not ready; marking
		// them Ready is the change every sidecar must see within 2s.
		api2 := m.startPod("api", "api-2", "api")
		api3 := m.startPod("api", "api-3", "api")
		m.waitSidecarReady(api2)
		m.waitSidecarReady(api3)
		t0 := time.Now()
		c.SetPodStatus(ns, "api-2", api2.ip, true)
		c.SetPodStatus(ns, "api-3", api3.ip, true)
		c.SyncEndpoints(ns, "api")
		written := time.Since(t0)
		all := []string{m.id("api-0"), m.id("api-1"), m.id("api-2"), m.id("api-3")}
		m.waitEndpoints(web, "api", all, convergeWithin-time.Since(t0))
		up := time.Since(t0)

		t0 = time.Now()
		m.deletePod(api2)
		m.deletePod(api3)
		m.waitEndpoints(web, "api", all[:2], convergeWithin-time.Since(t0))
		down := time.Since(t0)
		t.Logf("scale 2 -> 4 api pods converged in %v (%v of it writing pod statuses and the EndpointSlice), 4 -> 2 in %v (bound %v)",
			up.Round(time.Millisecond), written.Round(time.Millisecond), down.Round(time.Millisecond), convergeWithin)
		for i := 0; i < 4; i++ {
			if _, err := m.call(web, "/call/api"); err != nil {
				t.Fatalf("web -> api after scaling down: %v", err)
			}
		}
	})

	t.Run("NotReadyLeavesEndpointSet", func(t *testing.T) {
		t0 := time.Now()
		m.setReady(api1, false)
		written := time.Since(t0)
		m.waitEndpoints(web, "api", []string{m.id("api-0")}, convergeWithin-time.Since(t0))
		t.Logf("not-ready api-1 left web's endpoint set in %v (%v of it writing the pod status and the EndpointSlice)",
			time.Since(t0).Round(time.Millisecond), written.Round(time.Millisecond))
		for i := 0; i < 6; i++ {
			out, err := m.call(web, "/call/api")
			if err != nil {
				t.Fatalf("web -> api with api-1 not ready: %v", err)
			}
			if resp, _ := out["response"].(map[string]any); resp["instance"] != m.id("api-0") {
				t.Fatalf("a call reached %v, want only api-0 while api-1 is not ready", resp["instance"])
			}
		}
		t0 = time.Now()
		m.setReady(api1, true)
		m.waitEndpoints(web, "api", []string{m.id("api-0"), m.id("api-1")}, convergeWithin-time.Since(t0))
	})

	t.Run("OtherServiceAccountTokenRefused", func(t *testing.T) {
		// A pod of service api whose sidecar presents web's pod token.
		thief := m.startPod("api", "api-thief", "web")
		harness.Eventually(t, "the controller refusing api-thief's join", 15*time.Second, func() error {
			log := m.controller.Out.String()
			if strings.Contains(log, "join refused") && strings.Contains(log, m.id("api-thief")) {
				return nil
			}
			return errors.New("no refusal logged")
		})
		if err := harness.GetJSON(fmt.Sprintf("http://%s:%d/ready", thief.ip, adminPort), nil); err == nil {
			t.Error("the sidecar holding another service account's token became ready")
		}
		for _, line := range strings.Split(m.controller.Out.String(), "\n") {
			if strings.Contains(line, "join refused") && strings.Contains(line, m.id("api-thief")) {
				t.Logf("controller: %s", line)
				break
			}
		}
		// An unbound token of service account web: not bound to a pod, but
		// of the wrong account for a pod of api.
		thief2 := m.startPod("api", "api-thief2", "unbound:web")
		harness.Eventually(t, "the controller refusing api-thief2's join", 15*time.Second, func() error {
			for _, line := range strings.Split(m.controller.Out.String(), "\n") {
				if strings.Contains(line, "join refused") && strings.Contains(line, m.id("api-thief2")) {
					if strings.Contains(line, "runs as service account api, but the token is of service account web") {
						return nil
					}
					return errors.New(line)
				}
			}
			return errors.New("no refusal logged")
		})
		for _, name := range []string{"api-thief", "api-thief2"} {
			c.DeletePod(ns, name)
		}
		c.SyncEndpoints(ns, "api")
		for _, p := range []*pod{thief, thief2} {
			p.sidecar.Stop()
			p.app.Stop()
		}
	})

	t.Run("APIServerRestartKeepsTrafficAndResyncs", func(t *testing.T) {
		c.StopAPIServer()
		for i := 0; i < 10; i++ {
			if _, err := m.call(web, "/call/api/call/store"); err != nil {
				t.Fatalf("call %d while the API server is down: %v", i, err)
			}
		}
		c.StartAPIServer()
		t0 := time.Now()
		api4 := m.runPod("api", "api-4")
		d := m.waitEndpoints(web, "api", []string{m.id("api-0"), m.id("api-1"), m.id("api-4")}, 60*time.Second)
		t.Logf("after the API server restart, a new pod reached web's sidecar %v after its EndpointSlice was written (%v after the restart)",
			d.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
		if _, err := m.call(api4, "/call/store"); err != nil {
			t.Fatalf("the pod started after the restart cannot call store: %v", err)
		}
	})
}
