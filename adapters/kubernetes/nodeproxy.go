package kubernetes

import (
	"context"
	"fmt"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// The node proxy on Kubernetes (docs/deployment-models.md): a DaemonSet
// runs one weft-proxy per node in node mode, under a service account of
// its own; it joins with its pod's projected service-account token and
// serves the meshed pods of its node annotated weft.io/proxy-mode: node.
const (
	// AnnotationNodeProxy, as weft.io/node-proxy: "true" on a DaemonSet
	// (its own metadata, not its pod template), marks the DaemonSet whose
	// pods are node proxies. Only such a pod's token may ask for another
	// pod's certificate. Annotating a DaemonSet needs the right to change
	// DaemonSets in its namespace, which a pod's owner does not have.
	AnnotationNodeProxy = "weft.io/node-proxy"
	// NodeProxyValue is AnnotationNodeProxy's value.
	NodeProxyValue = "true"
)

// verifyNodeProxy checks that a reviewed token is a node proxy's and, when
// target is set (NAMESPACE/POD), that the node proxy may serve that pod.
//
// The token must be bound to a pod (a projected token, as the kubelet
// mounts) that still exists with the token's UID, is not being deleted,
// runs (phase Running) on a node (spec.nodeName), as the token's service
// account, and whose controller is a DaemonSet that exists with that UID,
// carries the annotation weft.io/node-proxy: "true" and runs its pods as
// the same service account. The target pod must exist, be placed on the
// same node, not have ended, and be annotated weft.io/proxy-mode: node.
// The answer names the node (spec.nodeName, as model.Instance.Node does)
// and, for a target, its service (its service account, as for a sidecar):
// the controller checks both again against the adapter's snapshot.
func verifyNodeProxy(ctx context.Context, cfg *config, st authnv1.TokenReviewStatus, tokNS, tokSA, target string) (*sdk.VerifyIdentityResponse, error) {
	names, uids := st.User.Extra[extraPodName], st.User.Extra[extraPodUID]
	if len(names) == 0 || names[0] == "" {
		return nil, fmt.Errorf("the token of service account %s/%s is bound to no pod: a node proxy joins with its pod's projected token (a serviceAccountToken volume with audience %s)", tokNS, tokSA, cfg.audience)
	}
	own := tokNS + "/" + names[0]
	pod, err := cfg.client.CoreV1().Pods(tokNS).Get(ctx, names[0], metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("the token's pod %s no longer exists: its token proves nothing", own)
	}
	if err != nil {
		return nil, fmt.Errorf("getting pod %s: %w", own, err)
	}
	switch {
	case len(uids) > 0 && uids[0] != string(pod.UID):
		return nil, fmt.Errorf("the token is bound to an earlier pod named %s (uid %s, now %s)", own, uids[0], pod.UID)
	case serviceAccount(pod) != tokSA:
		return nil, fmt.Errorf("pod %s runs as service account %s, but the token is of service account %s", own, serviceAccount(pod), tokSA)
	}
	if err := markedNodeProxy(ctx, cfg, pod, tokSA); err != nil {
		switch ns, _, _ := cutInstance(target); {
		case target == "":
			return nil, err
		case ns != tokNS:
			return nil, fmt.Errorf("the token is of service account %s/%s, which cannot speak for a pod in namespace %s, and %w", tokNS, tokSA, ns, err)
		default:
			return nil, fmt.Errorf("the token is bound to pod %s, not to %s, and %w", own, target, err)
		}
	}
	switch {
	case pod.DeletionTimestamp != nil:
		return nil, fmt.Errorf("node proxy pod %s is being deleted; its token proves nothing", own)
	case pod.Status.Phase != corev1.PodRunning:
		return nil, fmt.Errorf("node proxy pod %s is %s, not Running; its token proves nothing", own, phase(pod))
	case pod.Spec.NodeName == "":
		return nil, fmt.Errorf("node proxy pod %s is bound to no node (spec.nodeName is empty)", own)
	}
	node := pod.Spec.NodeName
	if target == "" {
		return &sdk.VerifyIdentityResponse{Node: node}, nil
	}

	ns, name, _ := cutInstance(target)
	tp, err := cfg.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("pod %s does not exist", target)
	}
	if err != nil {
		return nil, fmt.Errorf("getting pod %s: %w", target, err)
	}
	switch {
	case tp.Spec.NodeName != node:
		return nil, fmt.Errorf("the node proxy of node %s may not serve pod %s: it is placed on node %q", node, target, tp.Spec.NodeName)
	case tp.DeletionTimestamp != nil || tp.Status.Phase == corev1.PodSucceeded || tp.Status.Phase == corev1.PodFailed:
		return nil, fmt.Errorf("pod %s has ended or is being deleted; no proxy serves it", target)
	case tp.Annotations[AnnotationProxyMode] != model.ProxyModeNode:
		return nil, fmt.Errorf("pod %s did not choose node mode (annotation %s: %s), so no node proxy may serve it; it joins with its own sidecar", target, AnnotationProxyMode, model.ProxyModeNode)
	}
	return &sdk.VerifyIdentityResponse{InstanceID: target, Service: serviceAccount(tp), Namespace: tp.Namespace, Node: node}, nil
}

// markedNodeProxy checks that pod's controller is a DaemonSet marked as
// the node proxy, that it is that very DaemonSet (its UID), and that it
// runs its pods as service account sa.
func markedNodeProxy(ctx context.Context, cfg *config, pod *corev1.Pod, sa string) error {
	own := pod.Namespace + "/" + pod.Name
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "DaemonSet" || ref.APIVersion != "apps/v1" {
		return fmt.Errorf("pod %s is not a node proxy: only a pod of a DaemonSet annotated %s: %q may serve other pods", own, AnnotationNodeProxy, NodeProxyValue)
	}
	ds, err := cfg.client.AppsV1().DaemonSets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("pod %s is not a node proxy: its DaemonSet %s/%s does not exist", own, pod.Namespace, ref.Name)
	}
	if err != nil {
		return fmt.Errorf("getting DaemonSet %s/%s (grant the adapter get on daemonsets.apps, examples/kubernetes/rbac.yaml): %w", pod.Namespace, ref.Name, err)
	}
	tplSA := ds.Spec.Template.Spec.ServiceAccountName
	if tplSA == "" {
		tplSA = "default"
	}
	switch {
	case ds.UID != ref.UID:
		return fmt.Errorf("pod %s is not a node proxy: it names DaemonSet %s with uid %s, but that DaemonSet's uid is %s", own, ref.Name, ref.UID, ds.UID)
	case ds.Annotations[AnnotationNodeProxy] != NodeProxyValue:
		return fmt.Errorf("pod %s is not a node proxy: its DaemonSet %s/%s lacks the annotation %s: %q", own, ds.Namespace, ds.Name, AnnotationNodeProxy, NodeProxyValue)
	case tplSA != sa:
		return fmt.Errorf("pod %s is not a node proxy: it runs as service account %s, but its DaemonSet %s/%s runs its pods as %s", own, sa, ds.Namespace, ds.Name, tplSA)
	}
	return nil
}

func phase(pod *corev1.Pod) string {
	if pod.Status.Phase == "" {
		return "not started"
	}
	return string(pod.Status.Phase)
}
