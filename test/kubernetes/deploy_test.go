package kubernetes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/weftmesh/weft/adapters/kubernetes/inject"
	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// The manifests an operator applies, in order (README.md, "Running it").
var deployFiles = []string{"rbac.yaml", "controller.yaml", "injector.yaml", "app.yaml"}

// TestDeployManifestsAgainstAPIServer applies every manifest of
// examples/kubernetes server-side to a real kube-apiserver, after the
// Secrets and ConfigMap the README has the operator create, and holds
// them to what an operator needs: every object accepted with no Pod
// Security warning; the controller a StatefulSet of three with a volume
// claim, peers by DNS, the state key 0400, probes on endpoints the
// controller serves, a PodDisruptionBudget of two and anti-affinity;
// every pod of every template, and a pod as the injector mutates it,
// admitted by Pod Security admission in namespaces that enforce
// "restricted" (no kubelet runs: the pods stay Pending, admission is what
// is checked); and a pod that is not restricted-compliant refused there.
func TestDeployManifestsAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	apply := func(file string) {
		t.Helper()
		out, err := c.ApplyServerSide(filepath.Join(examples, file))
		if err != nil {
			t.Fatalf("kubectl apply --server-side -f %s: %v\n%s", file, err, out)
		}
		// The API server warns when a workload's pod template would
		// violate its namespace's Pod Security level.
		if strings.Contains(out, "PodSecurity") || strings.Contains(strings.ToLower(out), "warning") {
			t.Errorf("applying %s: the API server warned:\n%s", file, out)
		}
		t.Logf("applied %s:\n%s", file, strings.TrimSpace(out))
	}
	kubectl := func(args ...string) {
		t.Helper()
		if out, err := c.Kubectl(args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}

	apply("rbac.yaml")
	// What the README has the operator create before the controller.
	key := filepath.Join(dir, "state.key")
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	writeFile(t, key, base64.StdEncoding.EncodeToString(raw)+"\n")
	kubectl("-n", "weft-system", "create", "secret", "generic", "weft-state-key", "--from-file=state.key="+key)
	kubectl("-n", "weft-system", "create", "configmap", "weft-policy", "--from-file="+filepath.Join(examples, "policy"))
	crt, tlsKey, caPEM := injectorCertificate(t, dir)
	kubectl("-n", "weft-system", "create", "secret", "tls", "weft-injector-tls", "--cert="+crt, "--key="+tlsKey)
	for _, f := range deployFiles[1:] {
		apply(f)
	}
	// The README's caBundle command.
	kubectl("patch", "mutatingwebhookconfiguration", "weft-injector", "--type=json",
		"-p", `[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"`+base64.StdEncoding.EncodeToString(caPEM)+`"}]`)

	// Every object is stored.
	var workloads []workload
	for _, f := range deployFiles {
		for _, obj := range decodeAll(t, filepath.Join(examples, f)) {
			m, err := meta.Accessor(obj)
			if err != nil {
				t.Fatal(err)
			}
			kind := fmt.Sprintf("%T", obj)
			kind = kind[strings.LastIndex(kind, ".")+1:]
			args := []string{"get", strings.ToLower(kind), m.GetName()}
			if m.GetNamespace() != "" {
				args = append(args, "-n", m.GetNamespace())
			}
			if out, err := c.Kubectl(args...); err != nil {
				t.Errorf("%s %s/%s from %s is not stored: %v\n%s", kind, m.GetNamespace(), m.GetName(), f, err, out)
			}
			switch o := obj.(type) {
			case *appsv1.StatefulSet:
				workloads = append(workloads, workload{f, o.Namespace, o.Name, o.Spec.Template, o})
			case *appsv1.Deployment:
				workloads = append(workloads, workload{f, o.Namespace, o.Name, o.Spec.Template, nil})
			}
		}
	}

	t.Run("Controller", func(t *testing.T) {
		st, err := c.Admin.AppsV1().StatefulSets("weft-system").Get(ctx, "weft-controller", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkController(t, st)
		pdb, err := c.Admin.PolicyV1().PodDisruptionBudgets("weft-system").Get(ctx, "weft-controller", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkPDB(t, pdb, st)
		peers, err := c.Admin.CoreV1().Services("weft-system").Get(ctx, st.Spec.ServiceName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the StatefulSet's serviceName %q: %v", st.Spec.ServiceName, err)
		}
		if peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v; want a headless Service that publishes not-ready replicas (they are not ready before the cluster forms)", peers.Name, peers.Spec.ClusterIP, peers.Spec.PublishNotReadyAddresses)
		}
	})

	t.Run("PodsAdmittedRestricted", func(t *testing.T) {
		for _, ns := range []string{"weft-system", "shop"} {
			got, err := c.Admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("namespace %s enforces %q, want restricted", ns, got.Labels["pod-security.kubernetes.io/enforce"])
			}
		}
		if len(workloads) < 3 {
			t.Fatalf("found workloads %v, want the controller, the injector and the app", workloads)
		}
		for _, w := range workloads {
			pod := w.pod(0)
			created, err := c.Admin.CoreV1().Pods(w.ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Errorf("a pod of %s %s/%s is refused: %v", w.file, w.ns, w.name, err)
				continue
			}
			t.Logf("pod %s/%s of %s admitted (restricted)", created.Namespace, created.Name, w.file)
		}
	})

	t.Run("NonCompliantPodRefused", func(t *testing.T) {
		bare := func(ns string) *corev1.Pod {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: ns},
				Spec: corev1.PodSpec{ServiceAccountName: "api", Containers: []corev1.Container{{Name: "app", Image: "weft-demo-app:dev"}}}}
		}
		_, err := c.Admin.CoreV1().Pods("shop").Create(ctx, bare("shop"), metav1.CreateOptions{})
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
			t.Fatalf("a pod without a security context in namespace shop: %v, want it refused by PodSecurity (restricted)", err)
		}
		t.Logf("refused as it should be: %v", err)
		// A workload whose template breaks the profile is stored (it is
		// not a pod), but applying it warns: the check of every apply
		// above can fail.
		bad := filepath.Join(dir, "bad-deployment.yaml")
		writeFile(t, bad, `apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: shop}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      serviceAccountName: api
      containers: [{name: app, image: weft-demo-app:dev}]
`)
		out, err := c.Kubectl("apply", "--server-side", "--dry-run=server", "-f", bad)
		if err != nil || !strings.Contains(out, "would violate PodSecurity") {
			t.Errorf("applying a non-compliant Deployment in shop: %v\n%s\nwant a PodSecurity warning", err, out)
		}
		// The refusal is Pod Security's: the same pod passes where it is
		// not enforced.
		c.Namespace("unrestricted", "api")
		if _, err := c.Admin.CoreV1().Pods("unrestricted").Create(ctx, bare("unrestricted"), metav1.CreateOptions{}); err != nil {
			t.Errorf("the same pod in a namespace without Pod Security enforcement: %v", err)
		}
	})
	// Last: its webhook fails closed, and stays registered.
	t.Run("InjectedPodAdmittedRestricted", func(t *testing.T) {
		opts := inject.Options{ProxyImage: "localhost/weft-proxy:dev-amd64", Controller: "weft-controller.weft-system.svc:7400", TrustBundleConfig: "weft-trust-bundle"}
		srv := httptest.NewTLSServer(inject.Handler(opts))
		defer srv.Close()
		c.RegisterPodWebhook("weft-injector-deploy-test", "shop", srv)
		var app workload
		for _, w := range workloads {
			if w.file == "app.yaml" {
				app = w
			}
		}
		pod := c.CreateMutatedPod("shop", func(i int) *corev1.Pod {
			p := app.pod(100 + i)
			p.Spec.InitContainers = nil // the injector adds the sidecar
			p.Annotations = map[string]string{inject.AnnotationInject: "true", "weft.io/app-port": "8080"}
			return p
		}, func(p *corev1.Pod) bool { return len(p.Spec.InitContainers) == 1 }, 60*time.Second)
		if len(pod.Spec.InitContainers) != 1 {
			t.Fatalf("the stored pod has init containers %v, want the injected sidecar", pod.Spec.InitContainers)
		}
		checkPodIsolation(t, "injected pod", pod.Spec)
	})
}

// workload is a pod template of a manifest.
type workload struct {
	file, ns, name string
	tpl            corev1.PodTemplateSpec
	st             *appsv1.StatefulSet
}

func (w workload) String() string { return w.file + ":" + w.ns + "/" + w.name }

// pod is the i-th pod of the template, as its controller would create
// it: a StatefulSet's with its hostname, subdomain and claimed volumes.
func (w workload) pod(i int) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: *w.tpl.ObjectMeta.DeepCopy(), Spec: *w.tpl.Spec.DeepCopy()}
	p.Name, p.Namespace = fmt.Sprintf("%s-%d", w.name, i), w.ns
	if w.st != nil {
		p.Spec.Hostname, p.Spec.Subdomain = p.Name, w.st.Spec.ServiceName
		for _, claim := range w.st.Spec.VolumeClaimTemplates {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: claim.Name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name + "-" + p.Name}}})
		}
	}
	return p
}

// checkController holds the controller's StatefulSet to what three raft
// replicas need.
func checkController(t *testing.T, st *appsv1.StatefulSet) {
	t.Helper()
	if st.Spec.Replicas == nil || *st.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", st.Spec.Replicas)
	}
	if st.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q, want Parallel: a replica is not ready before the cluster forms, which takes the others", st.Spec.PodManagementPolicy)
	}
	if len(st.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates %v, want one for the raft data", st.Spec.VolumeClaimTemplates)
	}
	claim := st.Spec.VolumeClaimTemplates[0].Name
	spec := st.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("containers %v, want the controller", spec.Containers)
	}
	ctr := spec.Containers[0]
	flags := map[string][]string{}
	for _, a := range ctr.Args {
		if k, v, ok := strings.Cut(a, "="); ok {
			flags[k] = append(flags[k], v)
		}
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.Name] = m
	}
	data, ok := mounts[claim]
	if !ok || data.ReadOnly {
		t.Errorf("the claim %s is not mounted writable: %+v", claim, data)
	}
	for _, f := range []string{"--raft-dir", "--data-dir"} {
		if len(flags[f]) != 1 || !strings.HasPrefix(flags[f][0], data.MountPath) {
			t.Errorf("%s %v, want a directory on the claimed volume %s", f, flags[f], data.MountPath)
		}
	}
	if got := flags["--bootstrap-expect"]; len(got) != 1 || got[0] != "3" {
		t.Errorf("--bootstrap-expect %v, want 3", got)
	}
	peerDomain := "." + st.Spec.ServiceName + "." + st.Namespace + ".svc.cluster.local"
	if len(flags["--join"]) != 3 {
		t.Errorf("--join %v, want the three replicas", flags["--join"])
	}
	for i, j := range flags["--join"] {
		if want := fmt.Sprintf("%s-%d%s:7402", st.Name, i, peerDomain); j != want {
			t.Errorf("--join %q, want %q (the replica's DNS name under the headless Service)", j, want)
		}
	}
	if got := flags["--raft-addr"]; len(got) != 1 || got[0] != "$(POD_NAME)"+peerDomain+":7402" {
		t.Errorf("--raft-addr %v, want $(POD_NAME)%s:7402, the name its peers dial (and the kubelet writes into /etc/hosts)", got, peerDomain)
	}
	if got := flags["--kubernetes-trust-bundle"]; len(got) != 1 || got[0] != "weft-trust-bundle" {
		t.Errorf("--kubernetes-trust-bundle %v, want weft-trust-bundle (the ConfigMap the sidecars mount)", got)
	}
	keyFile := flags["--state-key-file"]
	var keyVol *corev1.Volume
	for i, v := range spec.Volumes {
		if m, ok := mounts[v.Name]; ok && len(keyFile) == 1 && strings.HasPrefix(keyFile[0], m.MountPath+"/") {
			keyVol = &spec.Volumes[i]
		}
	}
	if keyVol == nil || keyVol.Secret == nil || keyVol.Secret.DefaultMode == nil || *keyVol.Secret.DefaultMode != 0o400 {
		t.Errorf("--state-key-file %v: want it on a Secret volume with defaultMode 0400, got %+v", keyFile, keyVol)
	}
	if sc := spec.SecurityContext; sc == nil || sc.FSGroup == nil || sc.RunAsUser == nil || *sc.FSGroup != *sc.RunAsUser {
		t.Errorf("pod securityContext %+v: want fsGroup = runAsUser, so the claimed volume is writable and the 0400 key readable (through the group)", sc)
	}
	// Probes on the endpoints the controller serves without a token.
	for name, p := range map[string]*corev1.Probe{"startup": ctr.StartupProbe, "liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
		want := api.HealthLivePath
		if name == "readiness" {
			want = api.HealthReadyPath
		}
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s probe %+v, want HTTPS GET %s on the admin API", name, p, want)
		}
	}
	if !strings.HasPrefix(flags["--admin"][0], "0.0.0.0:") {
		t.Errorf("--admin %v: the kubelet probes the pod IP", flags["--admin"])
	}
	r := ctr.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Cpu().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("resources %+v, want cpu and memory requests and limits", r)
	}
	aff := spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 ||
		aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("affinity %+v, want required pod anti-affinity per node", aff)
	}
	if !strings.HasPrefix(ctr.Image, "localhost/weft:") {
		t.Errorf("image %q, want the name make images gives the weft image (IMAGE_PREFIX/weft:VERSION-ARCH)", ctr.Image)
	}
}

func checkPDB(t *testing.T, pdb *policyv1.PodDisruptionBudget, st *appsv1.StatefulSet) {
	t.Helper()
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 2 (a quorum of three)", pdb.Spec.MinAvailable)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(st.Spec.Template.Labels)) {
		t.Errorf("PodDisruptionBudget selector %v does not select the controller's pods (%v)", pdb.Spec.Selector, st.Spec.Template.Labels)
	}
}

// injectorCertificate writes a CA and the injector's serving certificate
// for its Service, as the README's openssl commands do.
func injectorCertificate(t *testing.T, dir string) (crtFile, keyFile string, caPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft-injector-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "weft-injector.weft-system.svc"},
		DNSNames:  []string{"weft-injector.weft-system.svc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	crtFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, crtFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return crtFile, keyFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
