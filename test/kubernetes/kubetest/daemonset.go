package kubetest

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What the control plane lacks for node proxies, played by the test: Node
// objects (no kubelet registers them) and the DaemonSet controller (no
// controller-manager creates a DaemonSet's pods).

// CreateNode creates a Node object named name (idempotent).
func (c *Cluster) CreateNode(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		c.t.Fatalf("creating node %s: %v", name, err)
	}
}

// CreateDaemonSet creates a DaemonSet whose pods (labelled app=NAME) run
// as service account sa, with the annotations given on the DaemonSet
// itself.
func (c *Cluster) CreateDaemonSet(ns, name, sa string, annotations map[string]string) *appsv1.DaemonSet {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	labels := map[string]string{"app": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: sa,
					Containers:         []corev1.Container{{Name: "weft-proxy", Image: "weft-test/weft-proxy"}},
				},
			},
		},
	}
	out, err := c.Admin.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("creating DaemonSet %s/%s: %v", ns, name, err)
	}
	return out
}

// CreateDaemonSetPod creates the pod the DaemonSet controller would for
// node: owned by ds (its controller reference), its template's labels and
// service account, bound to node, then Running at ip (not ready: a node
// proxy is in no Service).
func (c *Cluster) CreateDaemonSetPod(ds *appsv1.DaemonSet, name, node, ip string) *corev1.Pod {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	yes := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ds.Namespace, Labels: ds.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID,
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:           ds.Spec.Template.Spec.ServiceAccountName,
			NodeName:                     node,
			AutomountServiceAccountToken: new(bool),
			Containers:                   ds.Spec.Template.Spec.Containers,
		},
	}
	if _, err := c.Admin.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("creating pod %s/%s of DaemonSet %s: %v", ds.Namespace, name, ds.Name, err)
	}
	return c.SetPodStatus(ds.Namespace, name, ip, false)
}

// SetPodPhase writes the pod's phase, as the kubelet does when its
// containers end (Succeeded, Failed).
func (c *Cluster) SetPodPhase(ns, name string, phase corev1.PodPhase) *corev1.Pod {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pod, err := c.Admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatalf("getting pod %s/%s: %v", ns, name, err)
	}
	pod.Status.Phase = phase
	out, err := c.Admin.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		c.t.Fatalf("updating the phase of pod %s/%s: %v", ns, name, err)
	}
	return out
}
