package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.MeshBinaries(nil), func(dir string) error { binDir = dir; return nil }))
}

// processOptions: each process the test starts runs in a process group of
// its own, killed with the test binary, and stops within 5s of SIGTERM
// (then the group is killed); a failed test logs its last 30 lines.
var processOptions = harness.Options{Group: true, Grace: 5 * time.Second, LogTail: 30}

// start starts one process, with env added to the test's environment.
func start(t *testing.T, name string, env []string, bin string, args ...string) *harness.Process {
	t.Helper()
	o := processOptions
	o.Env = env
	return harness.Start(t, name, exec.Command(bin, args...), o)
}

// waitUntil polls cond every 50ms until it holds or timeout passes, and
// returns how long it took.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	t0 := time.Now()
	deadline := t0.Add(timeout)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return time.Since(t0)
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond) // polling a status endpoint, bounded above
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func getJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

// mesh is one Kubernetes cluster, one controller and the pods the test runs.
type mesh struct {
	t          *testing.T
	c          *kubetest.Cluster
	dir        string
	ns         string
	ipPrefix   string // 127.X.Y.
	nextIP     int
	controller *harness.Process
	listen     string
	admin      string
	dataDir    string
	pods       map[string]*pod
}

// pod is one pod the test plays the kubelet for.
type pod struct {
	name, service, ip string
	obj               *corev1.Pod
	app, sidecar      *harness.Process
}

const (
	appPort   = 8080
	meshPort  = 15001
	adminPort = 15000
)

// newMesh starts the controller with the kubernetes adapter (on namespace
// ns) and the local adapter running workloads.
func newMesh(t *testing.T, c *kubetest.Cluster, ns, policy, workloads string, ipBlock int) *mesh {
	t.Helper()
	m := &mesh{t: t, c: c, dir: t.TempDir(), ns: ns, ipPrefix: fmt.Sprintf("127.%d.%d.", 100+os.Getpid()%100, ipBlock), nextIP: 2, pods: map[string]*pod{}}
	polDir := filepath.Join(m.dir, "policy")
	must(t, os.MkdirAll(polDir, 0o755))
	must(t, os.WriteFile(filepath.Join(polDir, "policy.hcl"), []byte(policy), 0o644))
	wl := filepath.Join(m.dir, "workloads.hcl")
	must(t, os.WriteFile(wl, []byte(strings.ReplaceAll(workloads, "DEMO_APP", filepath.Join(binDir, "weft-demo-app"))), 0o644))
	m.listen, m.admin, m.dataDir = harness.FreeAddr(t), harness.FreeAddr(t), filepath.Join(m.dir, "data")
	o := harness.WeftController(binDir, m.dataDir, m.listen, m.admin,
		"--policy-dir", polDir,
		"--adapter", "kubernetes="+c.Kubeconfig("controller", c.AdminToken),
		"--adapter-option", "kubernetes.namespace="+ns,
		"--adapter", "local="+wl,
		"--adapter-option", "local.first_address="+m.ipPrefix+"200")
	o.Process = processOptions
	m.controller = harness.StartController(t, o).Process
	waitUntil(t, "controller's CA root", 30*time.Second, func() (bool, string) {
		_, err := os.Stat(filepath.Join(m.dataDir, "ca", "ca.crt"))
		return err == nil, fmt.Sprint(err)
	})
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// runPod creates a pod of service svc (its service account has the same
// name), starts its app and sidecar on an address of its own, waits for
// the sidecar to be ready, and only then marks the pod Ready, as a
// readiness gate on the sidecar would.
func (m *mesh) runPod(svc, name string) *pod {
	m.t.Helper()
	p := m.startPod(svc, name, svc)
	m.waitSidecarReady(p)
	m.c.SetPodStatus(m.ns, name, p.ip, true)
	m.c.SyncEndpoints(m.ns, svc)
	return p
}

// startPod creates the pod (not ready) and starts its processes, the
// sidecar joining with a token of service account tokenSA's pod (its
// first pod, tokenSA-0), or with an unbound token of service account S
// when tokenSA is "unbound:S".
func (m *mesh) startPod(svc, name, tokenSA string) *pod {
	m.t.Helper()
	p := &pod{name: name, service: svc, ip: fmt.Sprintf("%s%d", m.ipPrefix, m.nextIP)}
	m.nextIP++
	p.obj = m.c.CreatePod(kubetest.PodSpec{Namespace: m.ns, Name: name, ServiceAccount: svc,
		Labels: map[string]string{"app": svc}, Annotations: map[string]string{"weft.io/mesh-port": fmt.Sprint(meshPort)},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: appPort}}})
	p.obj = m.c.SetPodStatus(m.ns, name, p.ip, false)
	m.c.SyncEndpoints(m.ns, svc)

	var tok string
	var err error
	switch {
	case tokenSA == svc:
		tok, err = m.c.PodToken(p.obj, "weft", time.Hour)
	case strings.HasPrefix(tokenSA, "unbound:"):
		tok, err = m.c.ServiceAccountToken(m.ns, strings.TrimPrefix(tokenSA, "unbound:"), "weft")
	default:
		tok, err = m.c.PodToken(m.pods[tokenSA+"-0"].obj, "weft", time.Hour)
	}
	must(m.t, err)
	tokFile := filepath.Join(m.dir, name+".token")
	must(m.t, os.WriteFile(tokFile, []byte(tok), 0o600))

	p.app = start(m.t, name+"/app", []string{
		"HOST=" + p.ip, fmt.Sprintf("PORT=%d", appPort), "WEFT_SERVICE=" + svc, "WEFT_INSTANCE=" + m.ns + "/" + name,
		"UPSTREAM_API=http://" + p.ip + ":9001", "UPSTREAM_STORE=http://" + p.ip + ":9002",
	}, filepath.Join(binDir, "weft-demo-app"))
	p.sidecar = start(m.t, name+"/weft-proxy", nil, filepath.Join(binDir, "weft-proxy"),
		"--instance", m.ns+"/"+name, "--controller", m.listen,
		"--trust-bundle", filepath.Join(m.dataDir, "ca", "ca.crt"),
		"--admin", fmt.Sprintf("%s:%d", p.ip, adminPort),
		"--credential-adapter", "kubernetes", "--credential-file", tokFile)
	if tokenSA == svc {
		m.pods[name] = p
	}
	return p
}

func (m *mesh) waitSidecarReady(p *pod) {
	m.t.Helper()
	waitUntil(m.t, "sidecar of "+p.name+" ready", 30*time.Second, func() (bool, string) {
		select {
		case <-p.sidecar.Exited():
			m.t.Fatalf("sidecar of %s exited:\n%s\ncontroller:\n%s", p.name, p.sidecar.Out.String(), harness.Tail(m.controller.Out.String(), 30))
		default:
		}
		err := getJSON(fmt.Sprintf("http://%s:%d/ready", p.ip, adminPort), nil)
		return err == nil, fmt.Sprint(err)
	})
}

// setReady flips a pod's Ready condition and rewrites its Service's slice.
func (m *mesh) setReady(p *pod, ready bool) {
	m.t.Helper()
	m.c.SetPodStatus(m.ns, p.name, p.ip, ready)
	m.c.SyncEndpoints(m.ns, p.service)
}

// deletePod deletes the pod object, rewrites the slice, then stops its
// processes.
func (m *mesh) deletePod(p *pod) {
	m.t.Helper()
	m.c.DeletePod(m.ns, p.name)
	m.c.SyncEndpoints(m.ns, p.service)
	delete(m.pods, p.name)
	p.sidecar.Stop()
	p.app.Stop()
}

// sidecarConfig is the part of a sidecar's /config the tests read.
type sidecarConfig struct {
	Version string `json:"version"`
	Config  struct {
		Upstreams []struct {
			Name      string `json:"name"`
			Endpoints []struct {
				InstanceID string `json:"instanceId"`
			} `json:"endpoints"`
		} `json:"upstreams"`
	} `json:"config"`
}

// endpoints returns the instance IDs a pod's sidecar has for an upstream.
func (m *mesh) endpoints(p *pod, upstream string) ([]string, error) {
	var c sidecarConfig
	if err := getJSON(fmt.Sprintf("http://%s:%d/config", p.ip, adminPort), &c); err != nil {
		return nil, err
	}
	for _, u := range c.Config.Upstreams {
		if u.Name == upstream {
			var ids []string
			for _, e := range u.Endpoints {
				ids = append(ids, e.InstanceID)
			}
			return ids, nil
		}
	}
	return nil, nil
}

// waitEndpoints waits until p's sidecar lists exactly want (instance IDs)
// for upstream, and returns how long that took.
func (m *mesh) waitEndpoints(p *pod, upstream string, want []string, timeout time.Duration) time.Duration {
	m.t.Helper()
	wantSet := strings.Join(sortedCopy(want), ",")
	return waitUntil(m.t, fmt.Sprintf("%s's sidecar lists %s endpoints %v", p.name, upstream, want), timeout, func() (bool, string) {
		got, err := m.endpoints(p, upstream)
		if err != nil {
			return false, err.Error()
		}
		return strings.Join(sortedCopy(got), ",") == wantSet, fmt.Sprint(got)
	})
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

// call asks a pod's app to call path through its sidecar (the demo app's
// /call/...), returning the decoded answer.
func (m *mesh) call(p *pod, path string) (map[string]any, error) {
	var out map[string]any
	err := getJSON(fmt.Sprintf("http://%s:%d%s", p.ip, appPort, path), &out)
	return out, err
}

func (m *mesh) id(name string) string { return m.ns + "/" + name }

var _ = context.Background
