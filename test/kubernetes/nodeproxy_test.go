package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// nodePolicy: web and rogue (sidecars) call api (node mode); only web
// may. api calls store (a local process) through its node proxy.
const nodePolicy = `
mesh {
  trust_domain   = "weft.example"
  default_action = "deny"
}
service "web" {
  namespace = "shop"
  protocol  = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "web"
  }
  upstream "api" { local_port = 9001 }
}
service "rogue" {
  namespace = "shop"
  protocol  = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "rogue"
  }
  upstream "api" { local_port = 9001 }
}
service "api" {
  namespace = "shop"
  protocol  = "http"
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "api"
  }
  upstream "store" { local_port = 9002 }
}
service "store" {
  protocol = "http"
  binding "local" { name = "store" }
}
intention "web" "api" { action = "allow" }
intention "shop/api" "store" { action = "allow" }
`

// nodeProxy is one weft-proxy the test runs as a DaemonSet's pod would.
type nodeProxy struct {
	pod  *corev1.Pod
	proc *harness.Process
}

// startNodeProxy creates the DaemonSet's pod for node (bound to it,
// Running), writes its pod-bound token for audience weft where a
// projected token volume would put it, and starts weft-proxy in
// discovering node mode with it.
func (m *mesh) startNodeProxy(c *kubetest.Cluster, ds *appsv1.DaemonSet, node string) *nodeProxy {
	m.t.Helper()
	ip := fmt.Sprintf("%s%d", m.ipPrefix, m.nextIP)
	m.nextIP++
	p := c.CreateDaemonSetPod(ds, ds.Name+"-"+node, node, ip)
	tok, err := c.PodToken(p, "weft", time.Hour)
	must(m.t, err)
	return &nodeProxy{pod: p, proc: m.startNodeProxyWith(node, tok)}
}

// startNodeProxyWith starts weft-proxy --node NODE joining with tok.
func (m *mesh) startNodeProxyWith(node, tok string) *harness.Process {
	m.t.Helper()
	tokFile := filepath.Join(m.dir, "node-proxy-"+node+"-"+fmt.Sprint(m.nextIP)+".token")
	must(m.t, os.WriteFile(tokFile, []byte(tok), 0o600))
	m.nextIP++
	return start(m.t, "node-proxy/"+node, nil, filepath.Join(binDir, "weft-proxy"),
		"--node", node, "--credential-adapter", "kubernetes", "--credential-file", tokFile,
		"--controller", m.listen, "--trust-bundle", m.roots,
		"--data-dir", filepath.Join(m.dir, "node-proxy-"+node), "--discover-interval", "300ms")
}

// runNodeModePod creates a pod of service svc on node annotated
// weft.io/proxy-mode: node (no sidecar), Ready, and starts its app.
func (m *mesh) runNodeModePod(svc, name, node string) *pod {
	m.t.Helper()
	p := &pod{name: name, service: svc, ip: fmt.Sprintf("%s%d", m.ipPrefix, m.nextIP)}
	m.nextIP++
	p.obj = m.c.CreatePod(kubetest.PodSpec{Namespace: m.ns, Name: name, ServiceAccount: svc, Node: node,
		Labels:      map[string]string{"app": svc},
		Annotations: map[string]string{"weft.io/mesh-port": fmt.Sprint(meshPort), "weft.io/proxy-mode": "node"},
		Ports:       []corev1.ContainerPort{{Name: "http", ContainerPort: appPort}}})
	p.obj = m.c.SetPodStatus(m.ns, name, p.ip, true)
	m.c.SyncEndpoints(m.ns, svc)
	p.app = start(m.t, name+"/app", []string{
		"HOST=" + p.ip, fmt.Sprintf("PORT=%d", appPort), "WEFT_SERVICE=" + svc, "WEFT_INSTANCE=" + m.ns + "/" + name,
		"UPSTREAM_STORE=http://" + p.ip + ":9002",
	}, filepath.Join(binDir, "weft-demo-app"))
	m.pods[name] = p
	return p
}

// appCall is the demo app's answer to /call/...: the upstream's status
// and, for a 200, the callee's JSON.
type appCall struct {
	Status   int             `json:"status"`
	Raw      json.RawMessage `json:"response"`
	Response struct{ Service, Instance, Caller string }
	body     string
}

func (m *mesh) appCall(p *pod, path string) (*appCall, error) {
	_, b, err := harness.Get(context.Background(), fmt.Sprintf("http://%s:%d%s", p.ip, appPort, path))
	if err != nil {
		return nil, err
	}
	a := &appCall{body: b}
	if err := json.Unmarshal([]byte(b), a); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", b, err)
	}
	if a.Status == 200 {
		if err := json.Unmarshal(a.Raw, &a.Response); err != nil {
			return nil, fmt.Errorf("decoding the callee's answer %s: %w", a.Raw, err)
		}
	}
	return a, nil
}

// logSays waits until a process's log holds every one of parts on one line.
func logSays(t *testing.T, p *harness.Process, what string, timeout time.Duration, parts ...string) string {
	t.Helper()
	var found string
	harness.Eventually(t, what, timeout, func() error {
		for _, line := range strings.Split(p.Out.String(), "\n") {
			all := true
			for _, s := range parts {
				all = all && strings.Contains(line, s)
			}
			if all {
				found = line
				return nil
			}
		}
		return errors.New("not logged yet")
	})
	return found
}

// vmRSS reads a process's resident set in MiB (0 when it cannot).
func vmRSS(p *harness.Process) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%g", &kb)
			return kb / 1024
		}
	}
	return 0
}

// TestKubernetesNodeProxy runs the node proxy on a real kube-apiserver:
// a DaemonSet annotated weft.io/node-proxy: "true" (its pods created by
// the test, one per Node object, node-a and node-b), each pod's weft-proxy
// a process joining with its pod-bound token from the TokenRequest API;
// api's pods annotated weft.io/proxy-mode: node, two on node-a and one on
// node-b, their apps local processes on loopback addresses of their own;
// web and rogue with sidecars.
func TestKubernetesNodeProxy(t *testing.T) {
	c := kubetest.Start(t)
	c.CreateNode("node-a")
	c.CreateNode("node-b")
	ns, sys := "shop", "weft-system"
	c.Namespace(ns, "web", "api", "rogue")
	c.Namespace(sys, "weft-node-proxy")
	for _, svc := range []string{"web", "api", "rogue"} {
		c.CreateService(ns, svc, map[string]string{"app": svc}, appPort)
	}
	m := newMesh(t, c, ns, nodePolicy, workloads, 7)
	ds := c.CreateDaemonSet(sys, "weft-node-proxy", "weft-node-proxy", map[string]string{"weft.io/node-proxy": "true"})

	api0 := m.runNodeModePod("api", "api-0", "node-a")
	m.runNodeModePod("api", "api-1", "node-a")
	m.runNodeModePod("api", "api-2", "node-b")
	t0 := time.Now()
	npA := m.startNodeProxy(c, ds, "node-a")
	npB := m.startNodeProxy(c, ds, "node-b")
	web := m.runPod("web", "web-0")
	rogue := m.runPod("rogue", "rogue-0")
	webID := "spiffe://" + trustDomain + "/ns/" + ns + "/svc/web"

	t.Run("EachNodeProxyServesOnlyItsNodesPods", func(t *testing.T) {
		for _, want := range []struct {
			np       *nodeProxy
			instance string
		}{{npA, "api-0"}, {npA, "api-1"}, {npB, "api-2"}} {
			logSays(t, want.np.proc, want.np.pod.Spec.NodeName+"'s proxy serving "+want.instance, 30*time.Second,
				"instance joined this node proxy", m.id(want.instance))
			logSays(t, m.controller, "the controller admitting "+want.instance+" for "+want.np.pod.Spec.NodeName, 30*time.Second,
				"node proxy joined for an instance", m.id(want.instance), want.np.pod.Spec.NodeName, "svc/api")
		}
		t.Logf("both node proxies served their node's pods %v after they started", time.Since(t0).Round(time.Millisecond))
		// Neither lists the other node's pod, nor a sidecar's pod.
		for np, never := range map[*nodeProxy][]string{npA: {"api-2", "web-0", "rogue-0"}, npB: {"api-0", "api-1", "web-0", "rogue-0"}} {
			for _, id := range never {
				if strings.Contains(np.proc.Out.String(), m.id(id)) {
					t.Errorf("the node proxy of %s mentions %s, which it must not serve:\n%s", np.pod.Spec.NodeName, id, harness.Tail(np.proc.Out.String(), 20))
				}
			}
		}
	})

	t.Run("CallerReachesNodeModePodsWithItsIdentity", func(t *testing.T) {
		m.waitEndpoints(web, "api", []string{m.id("api-0"), m.id("api-1"), m.id("api-2")}, 30*time.Second)
		seen := map[string]bool{}
		took := harness.Eventually(t, "web reaching all three api pods through the node proxies", 30*time.Second, func() error {
			a, err := m.appCall(web, "/call/api")
			switch {
			case err != nil:
				return err
			case a.Status != 200:
				return fmt.Errorf("upstream status %d: %s", a.Status, a.body)
			case a.Response.Caller != webID:
				t.Fatalf("api pod %s saw caller %q, want %q", a.Response.Instance, a.Response.Caller, webID)
			}
			seen[a.Response.Instance] = true
			if len(seen) < 3 {
				return fmt.Errorf("reached %v", seen)
			}
			return nil
		})
		t.Logf("web reached api-0, api-1 (node-a's proxy) and api-2 (node-b's), each seeing %s, %v after web's endpoints listed them", webID, took.Round(time.Millisecond))
		t.Logf("resident memory: node-a's proxy %.1f MiB serving 2 pods, node-b's %.1f MiB serving 1, web's sidecar %.1f MiB",
			vmRSS(npA.proc), vmRSS(npB.proc), vmRSS(web.sidecar))
	})

	t.Run("DenyRefusesAnotherCaller", func(t *testing.T) {
		var a *appCall
		harness.Eventually(t, "rogue -> api answered by a node proxy", 30*time.Second, func() (err error) {
			if a, err = m.appCall(rogue, "/call/api"); err == nil && (a.Status == 0 || a.Status == 503) {
				err = fmt.Errorf("upstream status %d: %s", a.Status, a.body)
			}
			return err
		})
		if a.Status != 403 || !strings.Contains(a.body, "svc/rogue may not call api") {
			t.Errorf("rogue -> api: upstream status %d, want 403 naming svc/rogue: %s", a.Status, a.body)
		}
	})

	t.Run("NodeModePodCallsOutWithItsOwnIdentity", func(t *testing.T) {
		var a *appCall
		harness.Eventually(t, "api-0 -> store through node-a's proxy", 30*time.Second, func() (err error) {
			if a, err = m.appCall(api0, "/call/store"); err == nil && a.Status != 200 {
				err = fmt.Errorf("upstream status %d: %s", a.Status, a.body)
			}
			return err
		})
		if want := "spiffe://" + trustDomain + "/ns/" + ns + "/svc/api"; a.Response.Service != "store" || a.Response.Caller != want {
			t.Errorf("store answered %+v, want service store called by %s", a.Response, want)
		}
	})

	t.Run("SidecarTokenCannotClaimNodeMode", func(t *testing.T) {
		tok, err := c.PodToken(web.obj, "weft", time.Hour)
		must(t, err)
		p := m.startNodeProxyWith("node-1", tok) // web-0's own node
		line := logSays(t, p, "the controller refusing web-0's token as a node proxy", 30*time.Second,
			"asking the controller for this node's instances", "is not a node proxy")
		t.Logf("weft-proxy --node with web-0's token: %s", line)
		p.Stop()
		if strings.Contains(p.Out.String(), "instance joined this node proxy") {
			t.Errorf("a node proxy with a sidecar's token served an instance:\n%s", p.Out.String())
		}
	})

	t.Run("DeletedNodeProxyPodRefused", func(t *testing.T) {
		t0 := time.Now()
		c.DeletePod(sys, npB.pod.Name)
		line := logSays(t, npB.proc, "node-b's proxy refused once its pod is deleted", 30*time.Second,
			"asking the controller for this node's instances", "proves no node proxy", "weft-node-proxy-node-b no longer exists")
		t.Logf("node-b's proxy refused %v after its pod's deletion (bound 30s): %s", time.Since(t0).Round(time.Millisecond), line)
		// Once the API server's own cache of the token (10s) has expired,
		// it refuses the token itself.
		line = logSays(t, npB.proc, "the API server refusing the deleted pod's token", 30*time.Second,
			"asking the controller for this node's instances", "rejects the token", "invalidated")
		t.Logf("then %v after the deletion: %s", time.Since(t0).Round(time.Millisecond), line)
	})
}
