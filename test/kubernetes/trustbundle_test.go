package kubernetes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/kubernetes/kubetest"
)

// bundleWithin bounds how long the controller takes to bring a meshed
// namespace's trust bundle up to date (it looks every 2s).
const bundleWithin = 10 * time.Second

// TestControllerKeepsTrustBundle runs `weft controller
// --kubernetes-trust-bundle` as the example's service account (the RBAC
// of examples/kubernetes/rbac.yaml, applied server-side) against a real
// kube-apiserver: the meshed namespace gets the controller's bundle, and
// after `weft ca rotate` the bundle with both roots. The controller's
// health endpoints answer without a token, as the kubelet probes them.
func TestControllerKeepsTrustBundle(t *testing.T) {
	c := kubetest.Start(t)
	if out, err := c.ApplyServerSide(filepath.Join(examples, "rbac.yaml")); err != nil {
		t.Fatalf("applying rbac.yaml: %v\n%s", err, out)
	}
	token, err := c.ServiceAccountToken("weft-system", "weft-controller", kubetest.Issuer)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
		Labels: map[string]string{"weft.io/mesh": "enabled"}}}, metav1.CreateOptions{})
	must(t, err)

	dir := t.TempDir()
	o := harness.WeftController(binDir, filepath.Join(dir, "data"), harness.FreeAddr(t), harness.FreeAddr(t),
		"--policy-dir", harness.WritePolicy(t, dir, examplePolicy(t)),
		"--adapter", "kubernetes="+c.Kubeconfig("weft-controller", token),
		"--kubernetes-trust-bundle", "weft-trust-bundle")
	o.Process = processOptions
	ctl := harness.StartController(t, o)
	ctl.WaitCACert(t)
	// The CA is written before the admin token: wait for the admin API.
	ctl.WaitFor(t, "the admin API", 30*time.Second, func(*harness.Status) bool { return true })

	// bundleIs waits until shop's ConfigMap holds want.
	bundleIs := func(what, want string) {
		t.Helper()
		start := time.Now()
		var last string
		err := harness.Poll(ctx, bundleWithin, 50*time.Millisecond, func() error {
			cm, err := c.Admin.CoreV1().ConfigMaps("shop").Get(ctx, "weft-trust-bundle", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				last = "(none)"
				return err
			}
			if err != nil {
				return err
			}
			if last = cm.Data["ca.crt"]; last != want {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: shop/weft-trust-bundle holds %q after %v, want:\n%s", what, last, bundleWithin, want)
		}
		t.Logf("%s: shop/weft-trust-bundle current after %v", what, time.Since(start).Round(time.Millisecond))
	}
	var roots api.RootsReport
	must(t, ctl.Call("GET", "/v1/ca/roots", nil, &roots))
	first, err := os.ReadFile(ctl.CACert())
	must(t, err)
	if roots.BundlePEM != string(first) {
		t.Fatalf("GET /v1/ca/roots and %s disagree", ctl.CACert())
	}
	bundleIs("start", roots.BundlePEM)

	must(t, ctl.Call("POST", "/v1/ca/rotate", nil, nil))
	must(t, ctl.Call("GET", "/v1/ca/roots", nil, &roots))
	if len(roots.Roots) < 2 || roots.BundlePEM == string(first) {
		t.Fatalf("after rotation: %d roots, want the old and the new", len(roots.Roots))
	}
	bundleIs("after weft ca rotate", roots.BundlePEM)

	// The probes' endpoints, without a token, verifying the controller
	// with its CA as an operator would (the kubelet does not verify).
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(roots.BundlePEM))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for _, p := range []string{api.HealthLivePath, api.HealthReadyPath} {
		var h api.Health
		err := harness.Poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
			resp, err := hc.Get(ctl.URL() + p)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %+v", resp.Status, h)
			}
			return nil
		})
		if err != nil {
			t.Errorf("GET %s without a token: %v, want 200", p, err)
		}
	}
}
