package kubernetes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	roots      string // the controller's CA bundle
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
	polDir := harness.WritePolicy(t, m.dir, policy)
	wl := filepath.Join(m.dir, "workloads.hcl")
	harness.WriteFile(t, wl, strings.ReplaceAll(workloads, "DEMO_APP", filepath.Join(binDir, "weft-demo-app")))
	m.listen, m.admin, m.dataDir = harness.FreeAddr(t), harness.FreeAddr(t), filepath.Join(m.dir, "data")
	o := harness.WeftController(binDir, m.dataDir, m.listen, m.admin,
		"--policy-dir", polDir,
		"--adapter", "kubernetes="+c.Kubeconfig("controller", c.AdminToken),
		"--adapter-option", "kubernetes.namespace="+ns,
		"--adapter", "local="+wl,
		"--adapter-option", "local.first_address="+m.ipPrefix+"200")
	o.Process = processOptions
	ctl := harness.StartController(t, o)
	m.controller, m.roots = ctl.Process, ctl.WaitCACert(t)
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
		"--trust-bundle", m.roots,
		"--admin", fmt.Sprintf("%s:%d", p.ip, adminPort),
		"--credential-adapter", "kubernetes", "--credential-file", tokFile)
	if tokenSA == svc {
		m.pods[name] = p
	}
	return p
}

func (m *mesh) waitSidecarReady(p *pod) {
	m.t.Helper()
	harness.Eventually(m.t, "sidecar of "+p.name+" ready", 30*time.Second, func() error {
		select {
		case <-p.sidecar.Exited():
			m.t.Fatalf("sidecar of %s exited:\n%s\ncontroller:\n%s", p.name, p.sidecar.Out.String(), harness.Tail(m.controller.Out.String(), 30))
		default:
		}
		return harness.GetJSON(fmt.Sprintf("http://%s:%d/ready", p.ip, adminPort), nil)
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

// waitEndpoints waits until p's sidecar lists exactly want (instance IDs)
// for upstream, and returns how long that took.
func (m *mesh) waitEndpoints(p *pod, upstream string, want []string, timeout time.Duration) time.Duration {
	m.t.Helper()
	sorted := slices.Sorted(slices.Values(want))
	return harness.Eventually(m.t, fmt.Sprintf("%s's sidecar lists %s endpoints %v", p.name, upstream, want), timeout, func() error {
		got, err := harness.SidecarEndpoints(fmt.Sprintf("%s:%d", p.ip, adminPort), upstream)
		if err == nil && !slices.Equal(got, sorted) {
			err = fmt.Errorf("endpoints %v", got)
		}
		return err
	})
}

// call asks a pod's app to call path through its sidecar (the demo app's
// /call/...), returning the decoded answer.
func (m *mesh) call(p *pod, path string) (map[string]any, error) {
	var out map[string]any
	err := harness.GetJSON(fmt.Sprintf("http://%s:%d%s", p.ip, appPort, path), &out)
	return out, err
}

func (m *mesh) id(name string) string { return m.ns + "/" + name }
