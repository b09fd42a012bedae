package kubernetes

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// TestVerifyNodeProxyIdentity holds the node proxy's security rules
// against a real kube-apiserver: two Node objects, a marked DaemonSet with
// a pod on each, and the pods and tokens an attacker would try.
func TestVerifyNodeProxyIdentity(t *testing.T) {
	c := kubetest.Start(t)
	c.CreateNode("node-a")
	c.CreateNode("node-b")
	sys := freshNamespace(c, "weft-node-proxy", "impostor")
	apps := freshNamespace(c, "api", "web")

	ds := c.CreateDaemonSet(sys, "weft-node-proxy", "weft-node-proxy", map[string]string{AnnotationNodeProxy: NodeProxyValue})
	npA := c.CreateDaemonSetPod(ds, "np-a", "node-a", "198.51.100.101")
	npB := c.CreateDaemonSetPod(ds, "np-b", "node-b", "198.51.100.102")
	plain := c.CreateDaemonSet(sys, "plain", "weft-node-proxy", nil) // same service account, not marked
	plainA := c.CreateDaemonSetPod(plain, "plain-a", "node-a", "198.51.100.103")
	wrongUID := ds.DeepCopy()
	wrongUID.UID = types.UID("6a1f0c1e-0000-4000-8000-000000000000")
	forgedOwner := c.CreateDaemonSetPod(wrongUID, "forged-owner", "node-a", "198.51.100.104")
	otherSA := ds.DeepCopy()
	otherSA.Spec.Template.Spec.ServiceAccountName = "impostor"
	impostor := c.CreateDaemonSetPod(otherSA, "impostor-a", "node-a", "198.51.100.105")
	ended := c.CreateDaemonSetPod(ds, "np-ended", "node-a", "198.51.100.106")
	deleted := c.CreateDaemonSetPod(ds, "np-deleted", "node-a", "198.51.100.107")

	appPod := func(svc, name, node string, nodeMode bool) *corev1.Pod {
		ann := map[string]string{AnnotationMeshPort: "15001"}
		if nodeMode {
			ann[AnnotationProxyMode] = "node"
		}
		c.CreatePod(kubetest.PodSpec{Namespace: apps, Name: name, ServiceAccount: svc, Node: node, Labels: map[string]string{"app": svc},
			Annotations: ann, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}})
		return c.SetPodStatus(apps, name, "198.51.100.1", true)
	}
	apiA := appPod("api", "api-a", "node-a", true)
	appPod("api", "api-b", "node-b", true)
	webA := appPod("web", "web-a", "node-a", false)
	appPod("api", "api-done", "node-a", true)
	c.SetPodPhase(apps, "api-done", corev1.PodSucceeded)

	token := func(p *corev1.Pod, aud string) string {
		tok, err := c.PodToken(p, aud, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tokA, tokB := token(npA, "weft"), token(npB, "weft")
	tokEnded, tokDeleted := token(ended, "weft"), token(deleted, "weft")
	c.SetPodPhase(sys, "np-ended", corev1.PodSucceeded)
	c.DeletePod(sys, "np-deleted")
	unbound, err := c.ServiceAccountToken(sys, "weft-node-proxy", "weft")
	if err != nil {
		t.Fatal(err)
	}
	// A token whose claims are altered (another pod's name) keeps the
	// original signature; a forged one has a signature of no key.
	parts := strings.Split(tokA, ".")
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	altered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.ReplaceAll(string(claims), `"np-a"`, `"np-b"`))) + "." + parts[2]
	if altered == tokA {
		t.Fatal("the token's claims do not name pod np-a; cannot alter them")
	}
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("forged-signature", 16)))

	a := newTestAdapter()
	sdktest.ConfigureOK(t, a, &sdk.ConfigureRequest{Source: c.Kubeconfig("admin", c.AdminToken)})
	for _, tc := range []struct {
		name, cred, instance string
		wantErr              string // any of "|"-separated parts; "" means accepted
		wantNode, wantSvc    string
	}{
		{"node proxy asks who it is", tokA, "", "", "node-a", ""},
		{"node proxy of node-b asks who it is", tokB, "", "", "node-b", ""},
		{"node proxy serves a node-mode pod of its node", tokA, apps + "/api-a", "", "node-a", "api"},
		{"node proxy of node-b serves its own", tokB, apps + "/api-b", "", "node-b", "api"},
		{"a pod on another node", tokA, apps + "/api-b", `placed on node "node-b"`, "", ""},
		{"node-b's proxy asks for node-a's pod", tokB, apps + "/api-a", `placed on node "node-a"`, "", ""},
		{"a pod of its node that did not choose node mode", tokA, apps + "/web-a", "did not choose node mode", "", ""},
		{"a node-mode pod that has ended", tokA, apps + "/api-done", "has ended", "", ""},
		{"a pod that does not exist", tokA, apps + "/api-z", "does not exist", "", ""},
		{"a DaemonSet pod not marked", token(plainA, "weft"), "", "lacks the annotation weft.io/node-proxy", "", ""},
		{"a DaemonSet pod not marked asks for a pod", token(plainA, "weft"), apps + "/api-a", "lacks the annotation weft.io/node-proxy", "", ""},
		{"an ordinary sidecar's token claims node mode", token(apiA, "weft"), "", "is not a node proxy", "", ""},
		{"an ordinary sidecar's token asks for a pod of its node", token(webA, "weft"), apps + "/api-a", "is not a node proxy", "", ""},
		{"a pod naming the marked DaemonSet with another uid", token(forgedOwner, "weft"), apps + "/api-a", "that DaemonSet's uid is", "", ""},
		{"a pod of the marked DaemonSet under another service account", token(impostor, "weft"), apps + "/api-a", "runs its pods as weft-node-proxy", "", ""},
		{"an unbound token of the node proxy's service account", unbound, apps + "/api-a", "bound to no pod|cannot speak for a pod in namespace", "", ""},
		{"an unbound token asks who it is", unbound, "", "bound to no pod", "", ""},
		{"a terminated node proxy pod's token", tokEnded, apps + "/api-a", "is Succeeded, not Running", "", ""},
		{"a deleted node proxy pod's token", tokDeleted, apps + "/api-a", "rejects the token|no longer exists", "", ""},
		{"another audience", token(npA, "other"), apps + "/api-a", `rejects the token for audience "weft"`, "", ""},
		{"altered claims", altered, apps + "/api-a", "rejects the token", "", ""},
		{"forged signature", forged, "", "rejects the token", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := a.VerifyIdentity(ctx, &sdk.VerifyIdentityRequest{InstanceID: tc.instance, Credential: tc.cred})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if resp.Node != tc.wantNode || resp.Service != tc.wantSvc || resp.InstanceID != tc.instance {
					t.Errorf("proves %+v, want node %q, service %q, instance %q", resp, tc.wantNode, tc.wantSvc, tc.instance)
				}
				if tc.wantSvc != "" && resp.Namespace != apps {
					t.Errorf("proves namespace %q, want %q", resp.Namespace, apps)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted (%+v), want an error saying %q", resp, tc.wantErr)
			}
			matched := false
			for _, want := range strings.Split(tc.wantErr, "|") {
				matched = matched || strings.Contains(err.Error(), want)
			}
			if !matched {
				t.Errorf("error %q, want one saying %q", err, tc.wantErr)
			}
			t.Logf("refused: %v", err)
		})
	}

	// A node proxy pod being deleted (its finalizer holds it) proves nothing.
	t.Run("TerminatingNodeProxyPod", func(t *testing.T) {
		p := c.CreateDaemonSetPod(ds, "np-terminating", "node-a", "198.51.100.108")
		tok := token(p, "weft")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		patch := []byte(`{"metadata":{"finalizers":["weft.test/hold"]}}`)
		if _, err := c.Admin.CoreV1().Pods(sys).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		c.DeletePod(sys, p.Name)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c.Admin.CoreV1().Pods(sys).Patch(ctx, p.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		})
		_, err := a.VerifyIdentity(ctx, &sdk.VerifyIdentityRequest{InstanceID: apps + "/api-a", Credential: tok})
		if err == nil || !(strings.Contains(err.Error(), "being deleted") || strings.Contains(err.Error(), "rejects the token")) {
			t.Fatalf("a terminating node proxy pod's token: %v, want refused", err)
		}
		t.Logf("refused: %v", err)
	})
}
