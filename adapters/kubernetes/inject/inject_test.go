package inject

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

var opts = Options{ProxyImage: "weft:dev", Controller: "weft-controller.weft-system.svc:7400", TrustBundleConfig: "weft-trust-bundle"}

func podWith(annotations map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: annotations}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	return p
}

func withInit(p *corev1.Pod, names ...string) *corev1.Pod {
	for _, n := range names {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n})
	}
	return p
}

func withVolumes(p *corev1.Pod, names ...string) *corev1.Pod {
	for _, n := range names {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: n})
	}
	return p
}

func TestMutate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		wantOps int
		wantErr string
	}{
		{"not asked", podWith(nil, "app"), 0, ""},
		{"asked false", podWith(map[string]string{AnnotationInject: "false"}, "app"), 0, ""},
		{"asked", podWith(map[string]string{AnnotationInject: "true"}, "app"), 4, ""},
		{"already has the sidecar", podWith(map[string]string{AnnotationInject: "true"}, "app", ContainerName), 0, ""},
		{"already has the native sidecar", withInit(podWith(map[string]string{AnnotationInject: "true"}, "app"), ContainerName), 0, ""},
		{"has init containers", withInit(podWith(map[string]string{AnnotationInject: "true"}, "app"), "migrate"), 4, ""},
		{"declares the sidecar's volumes", withVolumes(podWith(map[string]string{AnnotationInject: "true"}, "app"), "weft-token", "weft-trust"), 3, ""},
		{"declares one of them", withVolumes(podWith(map[string]string{AnnotationInject: "true"}, "app"), "weft-trust", "data"), 4, ""},
		{"mesh port given", podWith(map[string]string{AnnotationInject: "true", AnnotationMeshPort: "16001"}, "app"), 4, ""},
		{"mesh port malformed", podWith(map[string]string{AnnotationInject: "true", AnnotationMeshPort: "x"}, "app"), 0, "not a port number"},
		{"node mode: no sidecar", podWith(map[string]string{AnnotationInject: "true", AnnotationProxyMode: "node"}, "app"), 0, ""},
		{"sidecar mode said", podWith(map[string]string{AnnotationInject: "true", AnnotationProxyMode: "sidecar"}, "app"), 4, ""},
		{"proxy mode misspelt", podWith(map[string]string{AnnotationInject: "true", AnnotationProxyMode: "nodes"}, "app"), 0, "write \"node\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := Mutate(opts, tc.pod)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(ops) != tc.wantOps {
				t.Fatalf("got %d ops (%v), want %d: %+v", len(ops), err, tc.wantOps, ops)
			}
		})
	}
	ops, _ := Mutate(opts, podWith(map[string]string{AnnotationInject: "true", AnnotationMeshPort: "16001"}, "app"))
	b, _ := json.Marshal(ops)
	// A pod with init containers gets the sidecar first among them.
	ops, _ = Mutate(opts, withInit(podWith(map[string]string{AnnotationInject: "true"}, "app"), "migrate"))
	if len(ops) == 0 || ops[0].Path != "/spec/initContainers/0" {
		t.Errorf("pod with an init container: first op %+v, want an add at /spec/initContainers/0", ops)
	}
	for _, want := range []string{`"path":"/spec/initContainers","value":[{"name":"weft-proxy"`, `"restartPolicy":"Always"`, `"--credential-adapter=kubernetes"`, `"audience":"weft"`, `"containerPort":16001`, `"path":"/metadata/annotations/weft.io~1mesh-port","value":"16001"`,
		`"runAsNonRoot":true`, `"allowPrivilegeEscalation":false`, `"drop":["ALL"]`, `"seccompProfile":{"type":"RuntimeDefault"}`, `"readOnlyRootFilesystem":true`, `"limits":{"cpu":"1","memory":"256Mi"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("patch lacks %s:\n%s", want, b)
		}
	}
}

// TestWebhookAgainstAPIServer registers the injector with a real
// kube-apiserver and creates pods through it.
func TestWebhookAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	srv := httptest.NewTLSServer(Handler(opts))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ns := "inject-test"
	c.Namespace(ns)
	fail := admissionregv1.Fail
	none := admissionregv1.SideEffectClassNone
	url := srv.URL + "/mutate"
	_, err := c.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "weft-injector"},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "inject.weft.io",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create}, Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The API server picks the configuration up through a watch: create
	// annotated pods until one comes back injected, within a bound.
	var pod *corev1.Pod
	for i := 0; ; i++ {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("api-%d", i), Annotations: map[string]string{AnnotationInject: "true"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
		pod, err = c.Admin.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating an annotated pod through the webhook: %v", err)
		}
		if len(pod.Spec.InitContainers) == 1 || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond) // waiting for the API server's webhook watch, bounded by ctx
	}
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != ContainerName {
		t.Fatalf("stored pod has containers %v and init containers %v, want app and the native sidecar weft-proxy", pod.Spec.Containers, pod.Spec.InitContainers)
	}
	if rp := pod.Spec.InitContainers[0].RestartPolicy; rp == nil || *rp != corev1.ContainerRestartPolicyAlways {
		t.Errorf("the sidecar's restartPolicy is %v, want Always (a native sidecar)", rp)
	}
	if pod.Annotations[AnnotationMeshPort] != "15001" || pod.Annotations[AnnotationInjected] != "true" {
		t.Errorf("annotations %v, want weft.io/mesh-port 15001 and weft.io/injected", pod.Annotations)
	}
	var projected bool
	for _, v := range pod.Spec.Volumes {
		if v.Projected != nil && len(v.Projected.Sources) > 0 && v.Projected.Sources[0].ServiceAccountToken != nil {
			projected = v.Projected.Sources[0].ServiceAccountToken.Audience == "weft"
		}
	}
	if !projected {
		t.Errorf("no projected token volume with audience weft in %+v", pod.Spec.Volumes)
	}
	// A pod that does not ask is left alone.
	plain, err := c.Admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plain"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil || len(plain.Spec.Containers) != 1 {
		t.Errorf("unannotated pod: %v, containers %v; want it unchanged", err, plain.Spec.Containers)
	}
}

// Several controller replicas reach the sidecar as one comma-separated
// --controller value, which weft-proxy splits.
func TestMutatePassesControllerReplicas(t *testing.T) {
	o := opts
	o.Controller = "weft-controller-0.weft-controller.weft-system.svc:7400,weft-controller-1.weft-controller.weft-system.svc:7400"
	ops, err := Mutate(o, podWith(map[string]string{AnnotationInject: "true"}, "app"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ops)
	if want := `"--controller=` + o.Controller + `"`; !strings.Contains(string(b), want) {
		t.Errorf("patch lacks %s:\n%s", want, b)
	}
}
