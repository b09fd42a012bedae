package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// gatewayE2EPolicy puts the ingress gateway "public" (instances of the
// service public) in front of web, with an HTTPS listener whose
// certificate comes from files; the gateway may call web, not secret.
func gatewayE2EPolicy(cert *harness.ServerCert) string {
	return fmt.Sprintf(`
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}
service "public" {
  binding "local" { name = "public" }
}
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}
service "secret" {
  protocol = "http"
  binding "local" { name = "secret" }
}
gateway "public" {
  listener "web" {
    port     = 8443
    protocol = "https"
    tls {
      cert_file = %q
      key_file  = %q
      sni       = ["shop.example.com", "secret.example.com"]
    }
    route "shop" {
      hosts   = ["shop.example.com"]
      service = "web"
    }
    route "secret" {
      hosts   = ["secret.example.com"]
      service = "secret"
    }
  }
}
intention "public" "web" { action = "allow" }
`, cert.CertFile, cert.KeyFile)
}

// TestGatewayLocalMesh: the gateway runs as weft-proxy, an instance of
// the local adapter (its app a placeholder), joins with its own token and
// gets its configuration from the controller; an outside client over TLS
// reaches web through it, web's sidecar verifies the gateway's own SPIFFE
// ID, and secret, which no intention opens to the gateway, refuses it.
func TestGatewayLocalMesh(t *testing.T) {
	dir := t.TempDir()
	cert := harness.NewServerCert(t, dir, "shop.example.com", "secret.example.com")
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("web", app) + harness.Workload("secret", app) +
		harness.Workload("public", "/bin/sleep", `args = ["infinity"]`)
	ctl, _ := startLocalMesh(t, gatewayE2EPolicy(cert), workloads, "127.0.111.2")
	start := time.Now()
	st := ctl.WaitFor(t, "3 instances, every sidecar and the gateway acknowledging", 60*time.Second, harness.Converged(3))
	t.Logf("the mesh converged in %v", time.Since(start).Round(time.Millisecond))
	gw := net.JoinHostPort(st.Address("public"), "8443")

	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: cert.Pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, gw)
		},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var hello struct{ Service, Instance, Caller string }
	start = time.Now()
	err := harness.Poll(context.Background(), 20*time.Second, 100*time.Millisecond, func() error {
		code, body, _, err := harness.Do(c, mustRequest(t, "https://shop.example.com/"))
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("GET https://shop.example.com/ through the gateway: %d %s", code, body)
		}
		return json.Unmarshal([]byte(body), &hello)
	})
	if err != nil {
		t.Fatalf("the gateway did not serve web: %v", err)
	}
	t.Logf("web answered through the gateway after %v", time.Since(start).Round(time.Millisecond))
	if hello.Service != "web" || hello.Caller != "spiffe://weft.test/ns/default/svc/public" {
		t.Errorf("web answered %+v; want service web and caller spiffe://weft.test/ns/default/svc/public (the gateway's identity)", hello)
	}
	code, body, _, err := harness.Do(c, mustRequest(t, "https://secret.example.com/"))
	if err != nil || code != http.StatusForbidden {
		t.Errorf("GET secret through the gateway: %d %q %v, want 403 (no intention lets public call secret)", code, body, err)
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
