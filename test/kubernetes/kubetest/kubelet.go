package kubetest

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// What the control plane lacks, played by the test: the kubelet (pod
// status) and the EndpointSlice controller (slices from Services' selectors).

// PodSpec describes a pod the test creates.
type PodSpec struct {
	Namespace, Name string
	ServiceAccount  string
	Labels          map[string]string
	Annotations     map[string]string
	Ports           []corev1.ContainerPort // of the app container
	Node            string
}

// CreatePod creates a pod (not yet running: no IP, not ready).
func (c *Cluster) CreatePod(s PodSpec) *corev1.Pod {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node := s.Node
	if node == "" {
		node = "node-1"
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: s.Annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName:           s.ServiceAccount,
			NodeName:                     node,
			AutomountServiceAccountToken: new(bool),
			Containers: []corev1.Container{
				{Name: "app", Image: "weft-test/app", Ports: s.Ports},
				{Name: "weft-proxy", Image: "weft-test/weft-proxy"},
			},
		},
	}
	out, err := c.Admin.CoreV1().Pods(s.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("creating pod %s/%s: %v", s.Namespace, s.Name, err)
	}
	return out
}

// SetPodStatus writes what the kubelet would: phase Running, the pod IP and
// the Ready condition.
func (c *Cluster) SetPodStatus(ns, name, ip string, ready bool) *corev1.Pod {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pod, err := c.Admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatalf("getting pod %s/%s: %v", ns, name, err)
	}
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.HostIP = "127.0.0.1"
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: cond, LastTransitionTime: now}}
	out, err := c.Admin.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		c.t.Fatalf("updating the status of pod %s/%s: %v", ns, name, err)
	}
	return out
}

// DeletePod deletes a pod at once (grace period 0: there is no kubelet to
// confirm a graceful stop).
func (c *Cluster) DeletePod(ns, name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	zero := int64(0)
	if err := c.Admin.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		c.t.Fatalf("deleting pod %s/%s: %v", ns, name, err)
	}
}

// sliceAddress: the API server refuses loopback addresses in an
// EndpointSlice, while tests run pods on loopback addresses. A loopback pod
// IP is written as the documentation address with the same last octet
// (198.51.100.N); the adapter takes the address from the pod's status.podIPs.
func sliceAddress(podIP string) string {
	a, err := netip.ParseAddr(podIP)
	if err != nil || !a.IsLoopback() || !a.Is4() {
		return podIP
	}
	return fmt.Sprintf("198.51.100.%d", a.As4()[3])
}

// CreateService creates a Service selecting pods by selector, with one
// port named "http" targeting port.
func (c *Cluster) CreateService(ns, name string, selector map[string]string, port int32) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector:  selector,
			ClusterIP: corev1.ClusterIPNone,
			Ports:     []corev1.ServicePort{{Name: "http", Port: port}},
		},
	}
	if _, err := c.Admin.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("creating service %s/%s: %v", ns, name, err)
	}
}

// SyncEndpoints writes the EndpointSlice of a Service from the pods its
// selector matches, as the EndpointSlice controller would: every pod with
// an IP, ready as its Ready condition says.
func (c *Cluster) SyncEndpoints(ns, service string) {
	c.t.Helper()
	if err := c.syncEndpoints(ns, service); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) syncEndpoints(ns, service string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := c.Admin.CoreV1().Services(ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("getting service %s/%s: %w", ns, service, err)
	}
	pods, err := c.Admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return fmt.Errorf("listing pods of %s/%s: %w", ns, service, err)
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: service + "-weft-test", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "weft-kubetest"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range svc.Spec.Ports {
		name, port := p.Name, p.Port
		if p.TargetPort.IntVal != 0 {
			port = p.TargetPort.IntVal
		}
		slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port})
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.PodIP == "" || pod.DeletionTimestamp != nil {
			continue
		}
		ready := false
		for _, cnd := range pod.Status.Conditions {
			if cnd.Type == corev1.PodReady && cnd.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		node := pod.Spec.NodeName
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{sliceAddress(pod.Status.PodIP)},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: new(bool)},
			NodeName:   &node,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID},
		})
	}
	cur, err := c.Admin.DiscoveryV1().EndpointSlices(ns).Get(ctx, slice.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.Admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	case err == nil:
		slice.ResourceVersion = cur.ResourceVersion
		_, err = c.Admin.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing the EndpointSlice of %s/%s: %w", ns, service, err)
	}
	return nil
}
