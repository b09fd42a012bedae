package kubetest

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/test/harness"
)

// RegisterPodWebhook registers srv's /mutate as the mutating webhook
// inject.weft.io of configuration name, for pods created in namespace ns,
// verified with srv's certificate. Its failure policy is Fail: no pod of
// ns is stored without its answer.
func (c *Cluster) RegisterPodWebhook(name, ns string, srv *httptest.Server) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	fail := admissionregv1.Fail
	none := admissionregv1.SideEffectClassNone
	url := srv.URL + "/mutate"
	if _, err := c.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "inject.weft.io",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create}, Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("registering webhook %s: %v", name, err)
	}
}

// CreateMutatedPod creates pods in ns, newPod(0), newPod(1)..., until the
// stored pod shows the webhook's mutation (mutated holds), as the API
// server picks a new webhook up through a watch: every 200ms, for at most
// timeout. It returns the last pod stored; a pod the API server refuses
// fails the test.
func (c *Cluster) CreateMutatedPod(ns string, newPod func(i int) *corev1.Pod, mutated func(*corev1.Pod) bool, timeout time.Duration) *corev1.Pod {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var pod *corev1.Pod
	i := 0
	_ = harness.Poll(ctx, timeout, 200*time.Millisecond, func() error {
		var err error
		pod, err = c.Admin.CoreV1().Pods(ns).Create(ctx, newPod(i), metav1.CreateOptions{})
		i++
		if err != nil {
			c.t.Fatalf("creating a pod through the webhook: %v", err)
		}
		if !mutated(pod) {
			return errors.New("not mutated yet")
		}
		return nil
	})
	return pod
}
