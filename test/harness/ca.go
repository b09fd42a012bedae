package harness

import (
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"
)

// WaitCACert waits, within 30s, until the controller has written its CA
// bundle (CACert, the sidecars' --trust-bundle), and returns its path.
func (c *Controller) WaitCACert(t testing.TB) string {
	t.Helper()
	Eventually(t, "the controller's CA bundle "+c.CACert(), 30*time.Second, func() error {
		_, err := os.Stat(c.CACert())
		return err
	})
	return c.CACert()
}

// RootPool is the controller's CA bundle (CACert) as a pool, to verify
// its sidecar and admin APIs.
func (c *Controller) RootPool(t testing.TB) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(c.CACert())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal(errors.New("no certificate in " + c.CACert()))
	}
	return pool
}
