package kubernetes

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/adapters/kubernetes/inject"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// checkPodIsolation holds a stored pod spec to the isolation rule: the
// sidecar's mesh port is the only container port (so the only one a
// Service can target by name), its admin API and the app are on
// 127.0.0.1, and its readiness probe does not need a listener on the pod
// IP other than the mesh port. It returns the mesh port.
func checkPodIsolation(t *testing.T, what string, spec corev1.PodSpec) corev1.ContainerPort {
	t.Helper()
	var mesh corev1.ContainerPort
	// The sidecar may be a native one (an init container that keeps
	// running, as the injector writes it).
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, p := range c.Ports {
			if c.Name != inject.ContainerName || p.Name != inject.MeshPortName {
				t.Errorf("%s: container %s declares port %s/%d: only the sidecar's %s may be on the pod network", what, c.Name, p.Name, p.ContainerPort, inject.MeshPortName)
				continue
			}
			mesh = p
		}
		if c.Name == inject.ContainerName {
			var admin string
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "--admin="); ok {
					admin = v
				}
			}
			if !strings.HasPrefix(admin, "127.0.0.1:") {
				t.Errorf("%s: the sidecar's admin API is at %q, want 127.0.0.1:<port>", what, admin)
			}
			rp := c.ReadinessProbe
			if rp == nil || rp.TCPSocket == nil || rp.TCPSocket.Port != intstr.FromString(inject.MeshPortName) {
				t.Errorf("%s: readiness probe %+v, want a TCP check of %s (the kubelet cannot reach the admin API)", what, rp, inject.MeshPortName)
			}
			continue
		}
		for _, e := range c.Env {
			switch {
			case e.Name == "HOST" && e.Value != "127.0.0.1":
				t.Errorf("%s: app %s listens on HOST=%q, want 127.0.0.1", what, c.Name, e.Value)
			case strings.HasPrefix(e.Name, "UPSTREAM_") && !strings.HasPrefix(e.Value, "http://127.0.0.1:"):
				t.Errorf("%s: app %s calls %s at %q, want its sidecar on 127.0.0.1", what, c.Name, e.Name, e.Value)
			}
		}
	}
	if mesh.ContainerPort == 0 {
		t.Fatalf("%s: no %s container port on the sidecar", what, inject.MeshPortName)
	}
	return mesh
}

// TestExampleIsolationAgainstAPIServer applies examples/kubernetes/app.yaml
// to a real kube-apiserver and checks what it stored: the Service targets
// the sidecar's mesh port, and the pod template exposes nothing else.
// (No kubelet runs here: the pods are not started.)
func TestExampleIsolationAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := "iso-example"
	c.Namespace(ns)
	var svc *corev1.Service
	var dep *appsv1.Deployment
	for _, obj := range decodeAll(t, filepath.Join(examples, "app.yaml")) {
		var err error
		switch o := obj.(type) {
		case *corev1.Namespace:
			continue // the test's own namespace stands for it
		case *corev1.ServiceAccount:
			o.Namespace = ns
			_, err = c.Admin.CoreV1().ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				err = nil
			}
		case *corev1.Service:
			o.Namespace = ns
			svc, err = c.Admin.CoreV1().Services(ns).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			o.Namespace = ns
			dep, err = c.Admin.AppsV1().Deployments(ns).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("app.yaml holds a %T, which this test does not apply", obj)
		}
		if err != nil {
			t.Fatalf("applying %T from app.yaml: %v", obj, err)
		}
	}
	if svc == nil || dep == nil {
		t.Fatal("app.yaml has no Service or no Deployment")
	}
	tpl := dep.Spec.Template
	mesh := checkPodIsolation(t, "app.yaml", tpl.Spec)
	if v := tpl.Annotations["weft.io/mesh-port"]; v != strconv.Itoa(int(mesh.ContainerPort)) {
		t.Errorf("weft.io/mesh-port = %q, want the sidecar's %s, %d", v, inject.MeshPortName, mesh.ContainerPort)
	}
	app, err := strconv.Atoi(tpl.Annotations["weft.io/app-port"])
	if err != nil || app == int(mesh.ContainerPort) {
		t.Errorf("weft.io/app-port = %q: want the app's port as a number (the Service's port is the sidecar's, so the adapter cannot take the app's from it)", tpl.Annotations["weft.io/app-port"])
	}
	if len(svc.Spec.Ports) == 0 {
		t.Fatal("the stored Service has no port")
	}
	for _, p := range svc.Spec.Ports {
		tp := p.TargetPort
		if !(tp.Type == intstr.String && tp.StrVal == inject.MeshPortName) && !(tp.Type == intstr.Int && tp.IntVal == mesh.ContainerPort) {
			t.Errorf("Service port %s targets %s, want the sidecar's mesh port (%s, %d)", p.Name, tp.String(), inject.MeshPortName, mesh.ContainerPort)
		}
		if tp.Type == intstr.Int && int(tp.IntVal) == app || tp.Type == intstr.String && tp.StrVal != inject.MeshPortName {
			t.Errorf("Service port %s targets %s: the app's port is not a Service target", p.Name, tp.String())
		}
	}
}

// TestInjectedIsolationAgainstAPIServer creates a pod through the
// injector, registered as a webhook with a real kube-apiserver, and checks
// the stored pod the same way.
func TestInjectedIsolationAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	opts := inject.Options{ProxyImage: "weft:dev", Controller: "weft-controller.weft-system.svc:7400", TrustBundleConfig: "weft-trust-bundle"}
	srv := httptest.NewTLSServer(inject.Handler(opts))
	defer srv.Close()
	ns := "iso-inject"
	c.Namespace(ns)
	c.RegisterPodWebhook("weft-injector-iso", ns, srv)
	pod := c.CreateMutatedPod(ns, func(i int) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("api-%d", i), Annotations: map[string]string{inject.AnnotationInject: "true", "weft.io/app-port": "8080"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "weft-demo-app:dev",
				Env: []corev1.EnvVar{{Name: "HOST", Value: "127.0.0.1"}, {Name: "PORT", Value: "8080"}}}}},
		}
	}, func(p *corev1.Pod) bool { return len(p.Spec.InitContainers) == 1 }, 60*time.Second)
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) != 1 {
		t.Fatalf("stored pod has containers %v and init containers %v, want app and the native sidecar weft-proxy", pod.Spec.Containers, pod.Spec.InitContainers)
	}
	mesh := checkPodIsolation(t, "injected pod", pod.Spec)
	if pod.Annotations[inject.AnnotationMeshPort] != strconv.Itoa(int(mesh.ContainerPort)) {
		t.Errorf("weft.io/mesh-port = %q, want %d", pod.Annotations[inject.AnnotationMeshPort], mesh.ContainerPort)
	}
	if len(pod.Spec.Containers[0].Ports) != 0 || len(pod.Spec.Containers[0].Args) != 0 {
		t.Errorf("the injector changed the app container: %+v", pod.Spec.Containers[0])
	}
}
