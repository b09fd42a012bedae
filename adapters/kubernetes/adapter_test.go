package kubernetes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// pluginEnv makes this test binary serve the adapter as a plugin process.
const pluginEnv = "WEFT_K8S_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) == "1" {
		sdk.Serve(New())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func newTestAdapter() *Adapter { return &Adapter{log: hclog.NewNullLogger()} }

var nsCounter atomic.Int32

// freshNamespace creates a namespace of its own for one subtest.
func freshNamespace(c *kubetest.Cluster, sas ...string) string {
	ns := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%100000, nsCounter.Add(1))
	c.Namespace(ns, sas...)
	return ns
}

// runPod creates a meshed pod of service svc, running and ready at ip.
func runPod(c *kubetest.Cluster, ns, svc, name, ip string, annotations map[string]string) *corev1.Pod {
	if annotations == nil {
		annotations = map[string]string{AnnotationMeshPort: "15001"}
	}
	c.CreatePod(kubetest.PodSpec{Namespace: ns, Name: name, ServiceAccount: svc, Labels: map[string]string{"app": svc},
		Annotations: annotations, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}})
	return c.SetPodStatus(ns, name, ip, true)
}

// TestAgainstAPIServer runs everything that needs a real kube-apiserver on
// one control plane.
func TestAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	admin := c.Kubeconfig("admin", c.AdminToken)

	fixture := func(t *testing.T) sdktest.Fixture {
		ns := freshNamespace(c, "api", "web")
		c.CreateService(ns, "api", map[string]string{"app": "api"}, 8080)
		runPod(c, ns, "api", "api-0", "198.51.100.1", nil)
		runPod(c, ns, "api", "api-1", "198.51.100.2", nil)
		c.SyncEndpoints(ns, "api")
		return sdktest.Fixture{
			Good:    &sdk.ConfigureRequest{Source: admin, Options: map[string]string{"namespace": ns}},
			Bad:     &sdk.ConfigureRequest{Source: c.UnreachableKubeconfig()},
			WantIDs: []string{ns + "/api-0", ns + "/api-1"},
			Change: func(t *testing.T) []string {
				runPod(c, ns, "api", "api-2", "198.51.100.3", nil)
				c.DeletePod(ns, "api-0")
				c.SyncEndpoints(ns, "api")
				return []string{ns + "/api-1", ns + "/api-2"}
			},
		}
	}
	t.Run("ConformanceInMemory", func(t *testing.T) {
		sdktest.Run(t, sdktest.InMemory(func() sdk.Adapter { return newTestAdapter() }), fixture)
	})
	t.Run("ConformanceOverPlugin", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		sdktest.Run(t, sdktest.OverPlugin(func() *exec.Cmd {
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), pluginEnv+"=1")
			return cmd
		}), fixture)
	})

	// Through the real binary, as the controller launches it.
	t.Run("ConformanceWeftAdapterKubernetes", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds cmd/weft; skipped with -short")
		}
		weft := filepath.Join(t.TempDir(), "weft")
		if out, err := exec.Command("go", "build", "-o", weft, "github.com/weftmesh/weft/cmd/weft").CombinedOutput(); err != nil {
			t.Fatalf("building cmd/weft: %v\n%s", err, out)
		}
		sdktest.Run(t, sdktest.OverPlugin(func() *exec.Cmd { return exec.Command(weft, "adapter", "kubernetes") }), fixture)
	})

	t.Run("BadInput", func(t *testing.T) {
		ns := freshNamespace(c)
		for _, tc := range []struct {
			name    string
			req     *sdk.ConfigureRequest
			summary string
			detail  []string
		}{
			{"kubeconfig points nowhere", &sdk.ConfigureRequest{Source: c.UnreachableKubeconfig()},
				"Kubernetes API server unreachable", []string{"does not answer", "https://127.0.0.1:"}},
			{"kubeconfig missing", &sdk.ConfigureRequest{Source: "/nonexistent/kubeconfig"},
				"Unusable kubeconfig", []string{"/nonexistent/kubeconfig"}},
			{"expired token", &sdk.ConfigureRequest{Source: c.Kubeconfig("expired", c.ExpiredServiceAccountToken(ns, "default"))},
				"Kubernetes API server refused the credentials", []string{"401 Unauthorized", "expired"}},
			{"RBAC lacks permissions", &sdk.ConfigureRequest{Source: c.Kubeconfig("nobody", c.NobodyToken)},
				"Missing Kubernetes permission", []string{`user "weft-nobody" may not list pods in all namespaces`, `verb "list"`, `resource "pods"`}},
			{"RBAC in one namespace", &sdk.ConfigureRequest{Source: c.Kubeconfig("nobody", c.NobodyToken), Options: map[string]string{"namespace": ns}},
				"Missing Kubernetes permission", []string{"watch endpointslices.discovery.k8s.io in namespace " + ns}},
			{"bad label selector", &sdk.ConfigureRequest{Source: admin, Options: map[string]string{"label_selector": "app in (a"}},
				"Invalid label selector", []string{"app in (a"}},
			{"unknown option", &sdk.ConfigureRequest{Source: admin, Options: map[string]string{"namespaces": "x"}},
				"Unknown option", []string{`"namespaces"`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				resp, err := newTestAdapter().Configure(ctx, tc.req)
				if err != nil {
					t.Fatalf("Configure: %v, want diagnostics", err)
				}
				var all []string
				for _, d := range resp.Diagnostics {
					all = append(all, d.Summary+": "+d.Detail)
					if d.Severity != sdk.SeverityError || d.Summary != tc.summary {
						continue
					}
					found := true
					for _, want := range tc.detail {
						found = found && strings.Contains(d.Detail, want)
					}
					if found {
						return
					}
				}
				t.Errorf("no error %q saying %q among:\n%s", tc.summary, tc.detail, strings.Join(all, "\n"))
			})
		}
	})

	t.Run("Identity", func(t *testing.T) {
		ns := freshNamespace(c, "api", "web")
		c.CreateService(ns, "api", map[string]string{"app": "api"}, 8080)
		api := runPod(c, ns, "api", "api-0", "198.51.100.1", nil)
		web := runPod(c, ns, "web", "web-0", "198.51.100.9", nil)
		a := newTestAdapter()
		sdktest.ConfigureOK(t, a, &sdk.ConfigureRequest{Source: admin})
		token := func(p *corev1.Pod, aud string) string {
			tok, err := c.PodToken(p, aud, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		unbound, err := c.ServiceAccountToken(ns, "api", "weft")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, instance, cred string
			wantErr              string
		}{
			{"own pod-bound token", ns + "/api-0", token(api, "weft"), ""},
			{"unbound token of the pod's service account", ns + "/api-0", unbound, ""},
			{"token of another service account", ns + "/api-0", token(web, "weft"), "bound to pod " + ns + "/web-0"},
			{"unbound token of another service account", ns + "/web-0", unbound, "runs as service account web, but the token is of service account api"},
			{"wrong audience", ns + "/api-0", token(api, "other"), `rejects the token for audience "weft"`},
			{"expired token", ns + "/api-0", c.ExpiredServiceAccountToken(ns, "api"), `rejects the token`},
			{"garbage", ns + "/api-0", "not-a-token", `rejects the token`},
			{"empty", ns + "/api-0", "", "credential is empty"},
			{"instance not NAMESPACE/POD", "api-0", token(api, "weft"), "not NAMESPACE/POD"},
			{"other namespace", "default/api-0", token(api, "weft"), "cannot speak for a pod in namespace default"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := a.VerifyIdentity(ctx, &sdk.VerifyIdentityRequest{InstanceID: tc.instance, Credential: tc.cred})
				if tc.wantErr == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if resp.Service != "api" || resp.Namespace != ns || resp.InstanceID != tc.instance {
						t.Errorf("proves %+v, want service api in %s for %s", resp, ns, tc.instance)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %+v, %v; want an error saying %q", resp, err, tc.wantErr)
				}
			})
		}
	})

	t.Run("MalformedPodReportedAsEvent", func(t *testing.T) {
		ns := freshNamespace(c, "api")
		c.CreateService(ns, "api", map[string]string{"app": "api"}, 8080)
		runPod(c, ns, "api", "api-good", "198.51.100.1", nil)
		runPod(c, ns, "api", "api-bad", "198.51.100.2", map[string]string{AnnotationMeshPort: "fifteen"})
		c.SyncEndpoints(ns, "api")
		a := newTestAdapter()
		sdktest.ConfigureOK(t, a, &sdk.ConfigureRequest{Source: admin, Options: map[string]string{"namespace": ns}})
		ev := sdktest.FirstEvent(t, a)
		if len(ev.Snapshot.Instances) != 1 || ev.Snapshot.Instances[0].ID != ns+"/api-good" {
			t.Errorf("snapshot %+v, want only %s/api-good", ev.Snapshot.Instances, ns)
		}
		if len(ev.Diagnostics) != 1 || !strings.Contains(ev.Diagnostics[0].Summary, "api-bad") {
			t.Errorf("diagnostics %+v, want one for api-bad", ev.Diagnostics)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			evs, err := c.Admin.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "api-bad").String()})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs.Items) > 0 {
				e := evs.Items[0]
				if e.Type != corev1.EventTypeWarning || e.Reason != "WeftInvalidAnnotation" || !strings.Contains(e.Message, `weft.io/mesh-port = "fifteen"`) {
					t.Errorf("event %s %s %q, want a Warning WeftInvalidAnnotation naming the annotation", e.Type, e.Reason, e.Message)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no Event on pod api-bad within 10s")
			}
			time.Sleep(100 * time.Millisecond) // polling the API with a bound
		}
	})

	t.Run("LabelSelectorScopes", func(t *testing.T) {
		ns := freshNamespace(c, "api")
		c.CreateService(ns, "api", map[string]string{"app": "api"}, 8080)
		runPod(c, ns, "api", "api-0", "198.51.100.1", nil)
		c.CreatePod(kubetest.PodSpec{Namespace: ns, Name: "api-canary", ServiceAccount: "api",
			Labels: map[string]string{"app": "api", "track": "canary"}, Annotations: map[string]string{AnnotationMeshPort: "15001"}})
		c.SetPodStatus(ns, "api-canary", "198.51.100.2", true)
		c.SyncEndpoints(ns, "api")
		a := newTestAdapter()
		sdktest.ConfigureOK(t, a, &sdk.ConfigureRequest{Source: admin, Options: map[string]string{"namespace": ns, "label_selector": "track=canary"}})
		ev := sdktest.FirstEvent(t, a)
		if len(ev.Snapshot.Instances) != 1 || ev.Snapshot.Instances[0].ID != ns+"/api-canary" {
			t.Errorf("snapshot %+v, want only %s/api-canary", ev.Snapshot.Instances, ns)
		}
	})
}
