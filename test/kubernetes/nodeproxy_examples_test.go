package kubernetes

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// TestNodeProxyExamplesAgainstAPIServer applies examples/kubernetes
// node-proxy.yaml and node-mode.yaml server-side to a real kube-apiserver
// and holds them to what the adapter requires: the DaemonSet marked
// weft.io/node-proxy: "true", its pods under its own service account
// joining with a projected token of audience weft, --node from
// spec.nodeName; node-mode pods annotated weft.io/proxy-mode: node with no
// sidecar; a pod of each template admitted by Pod Security; and the
// ClusterRole granting get on daemonsets.
func TestNodeProxyExamplesAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	for _, f := range []string{"rbac.yaml", "node-proxy.yaml", "node-mode.yaml"} {
		out, err := c.ApplyServerSide(filepath.Join(examples, f))
		if err != nil {
			t.Fatalf("kubectl apply --server-side -f %s: %v\n%s", f, err, out)
		}
		if strings.Contains(strings.ToLower(out), "warning") {
			t.Errorf("applying %s: the API server warned:\n%s", f, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ds, err := c.Admin.AppsV1().DaemonSets("weft-node-proxy").Get(ctx, "weft-node-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tpl := ds.Spec.Template.Spec
	proxy := tpl.Containers[0]
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"the DaemonSet is annotated weft.io/node-proxy: \"true\"", ds.Annotations["weft.io/node-proxy"] == "true"},
		{"its pods run as service account weft-node-proxy", tpl.ServiceAccountName == "weft-node-proxy"},
		{"it takes --node from spec.nodeName", slices.Contains(proxy.Args, "--node=$(NODE_NAME)") && slices.ContainsFunc(proxy.Env, func(e corev1.EnvVar) bool {
			return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
		})},
		{"it joins with the kubernetes credential from a file", slices.Contains(proxy.Args, "--credential-adapter=kubernetes") && slices.Contains(proxy.Args, "--credential-file=/var/run/secrets/weft/token")},
		{"the token is projected for audience weft", slices.ContainsFunc(tpl.Volumes, func(v corev1.Volume) bool {
			return v.Projected != nil && len(v.Projected.Sources) == 1 && v.Projected.Sources[0].ServiceAccountToken != nil && v.Projected.Sources[0].ServiceAccountToken.Audience == "weft"
		})},
	} {
		if !c.ok {
			t.Errorf("node-proxy.yaml: want %s", c.what)
		}
	}

	dep, err := c.Admin.AppsV1().Deployments("shop-node").Get(ctx, "catalog", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Template.Annotations["weft.io/proxy-mode"] != "node" || dep.Spec.Template.Spec.ServiceAccountName != "catalog" {
		t.Errorf("node-mode.yaml: the pods want weft.io/proxy-mode: node and service account catalog: %v, %q", dep.Spec.Template.Annotations, dep.Spec.Template.Spec.ServiceAccountName)
	}
	for _, ctr := range append(slices.Clone(dep.Spec.Template.Spec.InitContainers), dep.Spec.Template.Spec.Containers...) {
		if ctr.Name == "weft-proxy" {
			t.Errorf("node-mode.yaml: a node-mode pod has a weft-proxy container")
		}
	}

	// Pod Security admits a pod of each template (no kubelet: it stays
	// Pending; admission is what is checked).
	for _, p := range []struct {
		ns  string
		tpl corev1.PodTemplateSpec
	}{{"weft-node-proxy", ds.Spec.Template}, {"shop-node", dep.Spec.Template}} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "admitted-", Namespace: p.ns, Labels: p.tpl.Labels, Annotations: p.tpl.Annotations}, Spec: p.tpl.Spec}
		if _, err := c.Admin.CoreV1().Pods(p.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Errorf("a pod of the template in %s is refused: %v", p.ns, err)
		}
	}

	role, err := c.Admin.RbacV1().ClusterRoles().Get(ctx, "weft-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.APIGroups, "apps") && slices.Contains(r.Resources, "daemonsets") && slices.Contains(r.Verbs, "get")
	}) {
		t.Error("rbac.yaml: the controller's ClusterRole does not grant get on daemonsets.apps, which the node proxy check needs")
	}
}
