package trustbundle

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// rotateWithin bounds how long a new bundle takes to reach every meshed
// namespace (DefaultEvery is 2s; a tick, then the writes).
const rotateWithin = 10 * time.Second

func bundlePEM(n int) []byte {
	return []byte(fmt.Sprintf("-----BEGIN CERTIFICATE-----\nroot-%d\n-----END CERTIFICATE-----\n", n))
}

// TestTrustBundleAgainstAPIServer runs Run against a real kube-apiserver
// as the controller's service account, with exactly the rights of
// examples/kubernetes/rbac.yaml (applied server-side): every meshed
// namespace gets the bundle, a namespace that opts in gets it, a rotation
// reaches all of them, a ConfigMap deleted or edited by hand is written
// again, one in a namespace that opts out is deleted, and a ConfigMap of
// that name the controller did not write is left alone.
func TestTrustBundleAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	if out, err := c.ApplyServerSide("../../../examples/kubernetes/rbac.yaml"); err != nil {
		t.Fatalf("applying examples/kubernetes/rbac.yaml: %v\n%s", err, out)
	}
	token, err := c.ServiceAccountToken("weft-system", "weft-controller", kubetest.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(c.RestConfig(token))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	label := func(name string, meshed bool) {
		t.Helper()
		ns, err := c.Admin.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			ns, err = c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		if meshed {
			ns.Labels["weft.io/mesh"] = "enabled"
		} else {
			delete(ns.Labels, "weft.io/mesh")
		}
		if _, err := c.Admin.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	label("shop", true)
	label("billing", true)
	label("plain", false)
	// A ConfigMap of the same name that someone else wrote, in a
	// namespace outside the mesh: never touched.
	if _, err := c.Admin.CoreV1().ConfigMaps("plain").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: DefaultName},
		Data: map[string]string{DefaultKey: "theirs"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var bundle atomic.Pointer[[]byte]
	first := bundlePEM(1)
	bundle.Store(&first)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Options{Client: client, Bundle: func() []byte { return *bundle.Load() },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// holds waits until namespace ns's ConfigMap holds want ("" for no
	// ConfigMap), and says how long it took.
	holds := func(what, ns, want string) {
		t.Helper()
		start := time.Now()
		var last string
		err := harness.Poll(ctx, rotateWithin, 50*time.Millisecond, func() error {
			cm, err := c.Admin.CoreV1().ConfigMaps(ns).Get(ctx, DefaultName, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				last = "(none)"
			case err != nil:
				return err
			default:
				last = cm.Data[DefaultKey]
			}
			if last == want || want == "" && last == "(none)" {
				return nil
			}
			return fmt.Errorf("holds %q", last)
		})
		if err != nil {
			t.Fatalf("%s: %s/%s holds %q after %v, want %q", what, ns, DefaultName, last, rotateWithin, want)
		}
		t.Logf("%s: %s/%s current after %v", what, ns, DefaultName, time.Since(start).Round(time.Millisecond))
	}
	holds("start", "shop", string(first))
	holds("start", "billing", string(first))
	holds("start", "plain", "theirs")

	label("late", true)
	holds("a namespace opting in", "late", string(first))

	second := bundlePEM(2)
	bundle.Store(&second)
	for _, ns := range []string{"shop", "billing", "late"} {
		holds("rotation", ns, string(second))
	}

	if err := c.Admin.CoreV1().ConfigMaps("shop").Delete(ctx, DefaultName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	holds("deleted by hand", "shop", string(second))
	cm, err := c.Admin.CoreV1().ConfigMaps("billing").Get(ctx, DefaultName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[DefaultKey] = "tampered"
	cm.Labels["team"] = "billing" // another manager's label stays
	if _, err := c.Admin.CoreV1().ConfigMaps("billing").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	holds("edited by hand", "billing", string(second))
	if cm, _ := c.Admin.CoreV1().ConfigMaps("billing").Get(ctx, DefaultName, metav1.GetOptions{}); cm == nil || cm.Labels["team"] != "billing" {
		t.Errorf("the label another manager set is gone: %+v", cm)
	}

	label("late", false)
	holds("a namespace opting out", "late", "")
	holds("end", "plain", "theirs")

	// A replica that is not the leader writes nothing; once it is, it
	// writes. (Another ConfigMap name, with the admin's rights.)
	var leader atomic.Bool
	asked := make(chan struct{}, 64)
	followerCtx, stopFollower := context.WithCancel(ctx)
	followerDone := make(chan error, 1)
	go func() {
		followerDone <- Run(followerCtx, Options{Client: c.Admin, Name: "weft-trust-bundle-2", Every: 20 * time.Millisecond,
			Bundle: func() []byte { return *bundle.Load() },
			Writer: func() bool {
				select {
				case asked <- struct{}{}:
				default:
				}
				return leader.Load()
			},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() { stopFollower(); <-followerDone }()
	for i := 0; i < 5; i++ { // five passes it was asked to make, as a follower
		select {
		case <-asked:
		case <-time.After(rotateWithin):
			t.Fatalf("the follower's Run did not ask whether to write within %v", rotateWithin)
		}
	}
	if _, err := c.Admin.CoreV1().ConfigMaps("shop").Get(ctx, "weft-trust-bundle-2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a follower wrote shop/weft-trust-bundle-2 (%v)", err)
	}
	leader.Store(true)
	err = harness.Poll(ctx, rotateWithin, 50*time.Millisecond, func() error {
		_, err := c.Admin.CoreV1().ConfigMaps("shop").Get(ctx, "weft-trust-bundle-2", metav1.GetOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("once the leader, Run did not write shop/weft-trust-bundle-2 within %v: %v", rotateWithin, err)
	}
}

// Bad options are refused with what is wrong.
func TestRunRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no client", Options{Bundle: func() []byte { return nil }}},
		{"bad selector", Options{Client: kubernetes.New(nil), Bundle: func() []byte { return nil }, Selector: "a=b=c"}},
	} {
		if err := Run(context.Background(), tc.o); err == nil {
			t.Errorf("%s: Run accepted %+v", tc.name, tc.o)
		}
	}
}
