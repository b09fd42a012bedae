package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// The loopback addresses of this file's tests: the mesh's instances from
// .2 on, the servers standing for destinations outside the mesh from .10.
const (
	egressFirst    = "127.0.115.2"
	outsideAddr    = "127.0.115.10"
	impostorAddr   = "127.0.115.11"
	ledgerAddr     = "127.0.115.12"
	plainAddr      = "127.0.115.13"
	paymentsHost   = "api.payments.test"
	ledgerHost     = "ledger.test"
	ledgerSNI      = "tls.ledger.test"
	egressTimeout  = 90 * time.Second
	egressCallTime = 10 * time.Second
)

// egressPolicy declares five external services that the client calls
// through its sidecar: payments (HTTPS with TLS origination; /admin
// denied by a permission), impostor (the same host and CA file, but the
// server there has a certificate from another CA), ledger (TCP over TLS,
// with an SNI of its own), forbidden (an intention denies it) and plain
// (TCP without TLS).
func egressPolicy(caFile string, paymentsPort, impostorPort, ledgerPort, plainPort int) string {
	return fmt.Sprintf(`
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
  egress         = "deny"
}

service "client" {
  binding "local" { name = "client" }
  protocol = "http"
  upstream "payments" { local_port = 9101 }
  upstream "impostor" { local_port = 9102 }
  upstream "ledger" { local_port = 9103 }
  upstream "forbidden" { local_port = 9104 }
  upstream "plain" { local_port = 9105 }
}

external_service "payments" {
  host     = %[2]q
  address  = %[3]q
  port     = %[4]d
  protocol = "http"
  tls { ca_file = %[1]q }
}

external_service "impostor" {
  host     = %[2]q
  address  = %[5]q
  port     = %[6]d
  protocol = "http"
  tls { ca_file = %[1]q }
}

external_service "ledger" {
  host    = %[7]q
  address = %[8]q
  port    = %[9]d
  tls {
    ca_file = %[1]q
    sni     = %[10]q
  }
}

external_service "forbidden" {
  host     = %[2]q
  address  = %[3]q
  port     = %[4]d
  protocol = "http"
  tls { ca_file = %[1]q }
}

external_service "plain" {
  host    = "plain.test"
  address = %[11]q
  port    = %[12]d
}

intention "client" "payments" {
  permission {
    action = "deny"
    match { path_prefix = "/admin" }
  }
  permission {
    action = "allow"
    match { path_prefix = "/" }
  }
}
intention "client" "impostor" { action = "allow" }
intention "client" "ledger" { action = "allow" }
intention "client" "forbidden" { action = "deny" }
intention "client" "plain" { action = "allow" }
`, caFile, paymentsHost, outsideAddr, paymentsPort, impostorAddr, impostorPort, ledgerHost, ledgerAddr, ledgerPort, ledgerSNI, plainAddr, plainPort)
}

// egressMesh is the local mesh of the egress tests: the outside servers
// and the client, whose sidecar the test calls as its app would.
type egressMesh struct {
	ctl                        *harness.Controller
	client                     string
	payments, impostor, ledger *harness.Outside
	plain                      *harness.Outside
	policy, policyFile         string
	outsideCA                  *harness.TestCA
}

func startEgressMesh(t *testing.T, args ...string) *egressMesh {
	t.Helper()
	outsideCA := harness.NewTestCA(t, "outside CA")
	otherCA := harness.NewTestCA(t, "another CA")
	dir := t.TempDir()
	caFile := outsideCA.WritePEM(t, filepath.Join(dir, "outside-ca.pem"))
	m := &egressMesh{
		payments:  harness.StartOutside(t, outsideAddr+":0", outsideCA.Issue(t, paymentsHost), false),
		impostor:  harness.StartOutside(t, impostorAddr+":0", otherCA.Issue(t, paymentsHost), false),
		ledger:    harness.StartOutside(t, ledgerAddr+":0", outsideCA.Issue(t, ledgerSNI), true),
		outsideCA: outsideCA,
	}
	m.plain = harness.StartOutside(t, plainAddr+":0", tls.Certificate{}, true)
	port := func(o *harness.Outside) int { return harness.PortOf(t, o.Addr) }
	m.policy = egressPolicy(caFile, port(m.payments), port(m.impostor), port(m.ledger), port(m.plain))
	workloads := harness.Workload("client", filepath.Join(binDir, "weft-demo-app"))
	if len(args) == 0 {
		var policyDir string
		m.ctl, policyDir = startLocalMesh(t, m.policy, workloads, egressFirst)
		m.policyFile = filepath.Join(policyDir, harness.PolicyFile)
	} else {
		m.ctl = harness.StartLocalMesh(t, binDir, t.TempDir(), m.policy, workloads, egressFirst, args...).Controller
	}
	s := m.ctl.WaitFor(t, "the mesh to converge", egressTimeout, harness.Converged(1))
	m.client = s.Address("client")
	return m
}

// call sends GET path to the client's upstream listener on port, with
// host as the Host header when set.
func (m *egressMesh) call(t *testing.T, port, path, host string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), egressCallTime)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(m.client, port)+path, nil)
	if host != "" {
		req.Host = host
	}
	code, body, _, err := harness.Do(http.DefaultClient, req)
	if err != nil {
		t.Fatalf("calling through the client's sidecar: %v", err)
	}
	return code, body
}

// echo sends a line over TCP to the client's upstream listener on port
// and returns the answer, or the error met.
func (m *egressMesh) echo(port, line string) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(m.client, port), egressCallTime)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(egressCallTime))
	fmt.Fprintf(c, "%s\n", line)
	return bufio.NewReader(c).ReadString('\n')
}

// Egress (issue 16, part 6): a workload reaches a destination outside the
// mesh only through a declared external_service, allowed by an intention;
// its sidecar originates TLS, verified against the policy's CA file and
// the host name (or SNI). Everything else is refused, with a reason.
func TestEgress(t *testing.T) {
	start := time.Now()
	m := startEgressMesh(t)
	t.Logf("mesh converged in %v", time.Since(start).Round(time.Millisecond))
	paymentsHostPort := net.JoinHostPort(paymentsHost, fmt.Sprint(harness.PortOf(t, m.payments.Addr)))

	t.Run("HTTPS with TLS origination", func(t *testing.T) {
		code, body := m.call(t, "9101", "/charge", "")
		if want := "outside " + paymentsHostPort + " /charge"; code != 200 || body != want {
			t.Fatalf("GET /charge: %d %q, want 200 %q", code, body, want)
		}
		if h := m.payments.Hellos(); len(h) == 0 || h[0] != paymentsHost {
			t.Errorf("the server saw SNI %q, want %q", h, paymentsHost)
		}
		// The app chooses no destination: the listener's is declared, and
		// so is the Host header the outside server sees.
		code, body = m.call(t, "9101", "/charge", "evil.example")
		if want := "outside " + paymentsHostPort + " /charge"; code != 200 || body != want {
			t.Errorf("GET /charge with Host evil.example: %d %q, want 200 %q", code, body, want)
		}
	})

	t.Run("a permission denies a path of the external service", func(t *testing.T) {
		code, body := m.call(t, "9101", "/admin/keys", "")
		if code != http.StatusForbidden || !strings.Contains(body, `permission 1 of the intention from "default/client" to "payments" denies it`) {
			t.Errorf("GET /admin/keys: %d %q, want 403 naming the permission", code, body)
		}
	})

	t.Run("a server with a certificate from another CA is refused", func(t *testing.T) {
		code, body := m.call(t, "9102", "/charge", "")
		if code != http.StatusBadGateway || !strings.Contains(body, "originating TLS to external service impostor: its certificate is not signed by a CA of the service's ca_file") {
			t.Errorf("GET through impostor: %d %q, want 502 saying the certificate is not from the CA file", code, body)
		}
		if h := m.impostor.Hellos(); len(h) == 0 || h[0] != paymentsHost {
			t.Errorf("the impostor saw SNI %q, want %q", h, paymentsHost)
		}
		if strings.Contains(body, "outside ") {
			t.Errorf("the impostor's answer reached the app: %q", body)
		}
	})

	t.Run("an intention denying caller -> external refuses", func(t *testing.T) {
		before := len(m.payments.Hellos())
		code, body := m.call(t, "9104", "/charge", "")
		if code != http.StatusForbidden || !strings.Contains(body, `may not call forbidden: the intention from "default/client" to "forbidden" denies`) {
			t.Errorf("GET through forbidden: %d %q, want 403 naming the intention", code, body)
		}
		if n := len(m.payments.Hellos()); n != before {
			t.Errorf("the outside server was contacted (%d handshakes, %d before): a denied call must not leave the sidecar", n, before)
		}
	})

	t.Run("TCP over TLS with an SNI of its own", func(t *testing.T) {
		got, err := m.echo("9103", "ping")
		if err != nil || got != "echo ping\n" {
			t.Fatalf("TCP through ledger: %q, %v; want \"echo ping\\n\"", got, err)
		}
		if h := m.ledger.Hellos(); len(h) == 0 || h[len(h)-1] != ledgerSNI {
			t.Errorf("the ledger saw SNI %q, want %q", h, ledgerSNI)
		}
	})

	t.Run("plain TCP", func(t *testing.T) {
		got, err := m.echo("9105", "plain")
		if err != nil || got != "echo plain\n" {
			t.Fatalf("TCP through plain: %q, %v; want \"echo plain\\n\"", got, err)
		}
	})

	t.Run("an undeclared destination has no way out through the sidecar", func(t *testing.T) {
		// Nothing listens for it: the app has no port to call.
		c, err := net.DialTimeout("tcp", net.JoinHostPort(m.client, "9106"), egressCallTime)
		if err == nil {
			c.Close()
			t.Fatal("a connection to a port no upstream declares was accepted")
		}
		cfg, err := harness.ReadSidecarConfig(net.JoinHostPort(m.client, "15000"))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"payments", "impostor", "ledger", "forbidden", "plain"}
		if cfg.Config.Egress == nil || cfg.Config.Egress.Mode != "EGRESS_MODE_DENY" || !slices.Equal(cfg.Config.Egress.Declared, want) {
			t.Errorf("the sidecar's egress = %+v, want deny with %v declared", cfg.Config.Egress, want)
		}
	})

	t.Run("latency, printed", func(t *testing.T) {
		// Not a bound (speed goals belong in benchmarks): what TLS
		// origination through the sidecar adds, on a loaded 2-core box.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(m.outsideCA.PEM())
		direct := &http.Client{Timeout: egressCallTime, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: paymentsHost}}}
		through := &http.Client{Timeout: egressCallTime}
		measure := func(c *http.Client, url string) (p50, p99 time.Duration) {
			const n = 300
			ds := make([]time.Duration, 0, n)
			for range n {
				start := time.Now()
				req, _ := http.NewRequest("GET", url, nil)
				code, _, _, err := harness.Do(c, req)
				if err != nil || code != 200 {
					t.Fatalf("GET %s: %d %v", url, code, err)
				}
				ds = append(ds, time.Since(start))
			}
			slices.Sort(ds)
			return ds[n/2], ds[n*99/100]
		}
		d50, d99 := measure(direct, "https://"+m.payments.Addr+"/charge")
		s50, s99 := measure(through, "http://"+net.JoinHostPort(m.client, "9101")+"/charge")
		t.Logf("300 sequential GETs, keep-alive: direct HTTPS p50 %v p99 %v; app -> sidecar -> TLS origination p50 %v p99 %v",
			d50.Round(time.Microsecond), d99.Round(time.Microsecond), s50.Round(time.Microsecond), s99.Round(time.Microsecond))
	})

	t.Run("a policy change: a wrong SNI is refused, a denied TCP connection closed", func(t *testing.T) {
		changed := strings.Replace(m.policy, `intention "client" "plain" { action = "allow" }`, `intention "client" "plain" { action = "deny" }`, 1)
		changed = strings.Replace(changed, "external_service \"payments\" {\n  host     = \""+paymentsHost+"\"\n  address  = \""+outsideAddr+"\"",
			"external_service \"payments\" {\n  host     = \"other.payments.test\"\n  address  = \""+outsideAddr+"\"", 1)
		if changed == m.policy || strings.Count(changed, "other.payments.test") != 1 {
			t.Fatal("the test's policy edit found nothing to change")
		}
		harness.ReplaceFile(t, m.policyFile, changed)
		took := harness.Eventually(t, "the new policy at the client's sidecar", egressTimeout, func() error {
			if code, body := m.call(t, "9101", "/charge", ""); code != http.StatusBadGateway ||
				!strings.Contains(body, `its certificate is not valid for "other.payments.test"`) {
				return fmt.Errorf("GET through payments: %d %q, want 502 naming the wrong name", code, body)
			}
			return nil
		})
		t.Logf("the new policy was in force after %v", took.Round(time.Millisecond))
		got, err := m.echo("9105", "plain")
		if err == nil || got != "" {
			t.Errorf("TCP through plain after the deny: %q, %v; want the connection closed with nothing", got, err)
		}
	})
}

// With the local adapter's option egress = deny, the guard keeps an app
// from reaching anything but its own sidecar's listeners: the outside is
// reachable only through declared external services. Needs root and nft
// (like TestIsolationGuard).
func TestEgressGuard(t *testing.T) {
	nft := nftBinary(t)
	direct := listen(t, "127.0.115.14:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "direct") }), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(direct)
	t.Cleanup(func() { srv.Close() })
	directURL := "http://" + direct.Addr().String() + "/"

	m := startEgressMesh(t, "--adapter-option", "local.egress=deny")
	s, err := m.ctl.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range s.Adapters {
		table := fmt.Sprintf("weft_local_%d", a.Pid)
		t.Cleanup(func() { _ = exec.Command(nft, "delete", "table", "inet", table).Run() })
	}
	app := appGID(t, m.client)

	// The destination is there: this test process (no app's gid) reaches it.
	if got, err := fetchAs(t, 0, directURL); err != nil || got != "200 direct" {
		t.Fatalf("the test's own GET %s: %q, %v; want 200 direct", directURL, got, err)
	}
	t.Run("the app's direct connection out is refused", func(t *testing.T) {
		got, err := fetchAs(t, app, directURL)
		if err == nil {
			t.Fatalf("the app reached %s directly: %s", directURL, got)
		}
		if !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "refused") {
			t.Errorf("the app's direct GET: %v, want the connection refused", err)
		}
	})
	t.Run("the app reaches a declared external service through its sidecar", func(t *testing.T) {
		url := "http://" + net.JoinHostPort(m.client, "9101") + "/charge"
		var got string
		took := harness.Eventually(t, "the app's call through its sidecar", 20*time.Second, func() error {
			var err error
			got, err = fetchAs(t, app, url)
			return err
		})
		t.Logf("the call went through after %v", took)
		if !strings.HasPrefix(got, "200 outside "+paymentsHost+":") {
			t.Errorf("the app's GET through its sidecar: %q, want 200 from the outside server", got)
		}
	})
}
