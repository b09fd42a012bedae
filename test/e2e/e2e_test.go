package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/test/harness"
)

const trustDomain = "weft.test"

const policyHCL = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "web" { local_port = 9001 }
  upstream "echo" { local_port = 9002 }
  upstream "secret" { local_port = 9003 }
}

service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}
service "echo" {
  protocol = "grpc"
  binding "local" { name = "echo" }
}
service "secret" {
  protocol = "http"
  binding "local" { name = "secret" }
}

intention "client" "web" { action = "allow" }
intention "client" "echo" { action = "allow" }
`

func workloadsHCL() string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("client", app) + harness.Workload("web", app, "instances = 2") +
		harness.Workload("echo", filepath.Join(binDir, "grpcapp")) + harness.Workload("secret", app)
}

func id(svc string) string { return "spiffe://" + trustDomain + "/ns/default/svc/" + svc }

type mesh struct {
	t         *testing.T
	ctl       *harness.Controller
	policyDir string
	client    string // the client instance's address
	byService map[string][]string
}

func startMesh(t *testing.T) *mesh {
	// Addresses of their own, apart from the demo's and other tests'.
	ctl, policyDir := startLocalMesh(t, policyHCL, workloadsHCL(), "127.0.77.2")
	m := &mesh{t: t, ctl: ctl, policyDir: policyDir, byService: map[string][]string{}}
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(5))
	for _, in := range s.Instances {
		m.byService[in.Service] = append(m.byService[in.Service], in.Address)
	}
	m.client = m.byService["client"][0]
	return m
}

func (m *mesh) upstream(port string) string {
	return "http://" + net.JoinHostPort(m.client, port) + "/"
}

// callWeb calls the web service through the client's sidecar and checks the
// web app saw the client's identity.
func (m *mesh) callWeb(ctx context.Context) error {
	code, body, err := harness.Get(ctx, m.upstream("9001"))
	if err != nil {
		return err
	}
	if code != 200 {
		return &callError{code, body}
	}
	var got struct{ Service, Caller string }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		return err
	}
	if got.Service != "web" || got.Caller != id("client") {
		return &callError{code, body}
	}
	return nil
}

type callError struct {
	code int
	body string
}

func (e *callError) Error() string {
	return "unexpected answer " + http.StatusText(e.code) + ": " + e.body
}

func TestLocalMesh(t *testing.T) {
	m := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("HTTP over mTLS carries the caller's identity", func(t *testing.T) {
		// Two web instances behind one upstream: both answer, in turn.
		for i := 0; i < 4; i++ {
			if err := m.callWeb(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("gRPC over mTLS carries the caller's identity", func(t *testing.T) {
		var hdr metadata.MD
		resp, err := harness.HealthClient(t, net.JoinHostPort(m.client, "9002")).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health = %v", resp.Status)
		}
		if got := hdr.Get("x-seen-caller"); len(got) != 1 || got[0] != id("client") {
			t.Errorf("the gRPC app saw caller %v, want %s", got, id("client"))
		}
	})

	t.Run("no intention means refused under default deny", func(t *testing.T) {
		code, body, err := harness.Get(ctx, m.upstream("9003"))
		if err != nil {
			t.Fatal(err)
		}
		if code != 403 || !strings.Contains(body, "intention") {
			t.Errorf("client -> secret = %d %q, want 403 naming the missing intention", code, body)
		}
	})

	t.Run("a certificate from another CA is refused", func(t *testing.T) {
		cert := foreignCert(t, id("client"))
		target := net.JoinHostPort(m.byService["web"][0], "15001")
		raw, err := net.DialTimeout("tcp", target, 10*time.Second)
		if err != nil {
			t.Fatalf("the web sidecar's mesh port does not accept connections at all: %v", err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		conn := tls.Client(raw, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		// With TLS 1.3 the server's verdict on our certificate arrives
		// after the client's handshake completes, with the first read.
		err = conn.Handshake()
		if err == nil {
			conn.Write([]byte("GET / HTTP/1.1\r\nHost: web\r\n\r\n"))
			buf := make([]byte, 512)
			var n int
			n, err = conn.Read(buf)
			if err == nil {
				t.Fatalf("the web sidecar answered a client with a foreign certificate: %q", buf[:n])
			}
		}
		if !strings.Contains(err.Error(), "tls:") {
			t.Errorf("refused, but not by TLS: %v", err)
		}
	})

	t.Run("the admin API issues join tokens the controller accepts once", func(t *testing.T) {
		joinTokensFromAdmin(t, m.ctl, "secret-0", "secret")
	})

	t.Run("the admin API is HTTPS only, and the CLI finds it through WEFT_ADDR", func(t *testing.T) {
		adminIsHTTPSOnly(t, m.ctl)
	})

	t.Run("policy plan compares with the running controller's policy", func(t *testing.T) {
		next := t.TempDir()
		newPolicy := policyHCL + "\nintention \"client\" \"secret\" { action = \"allow\" }\n"
		harness.WriteFile(t, filepath.Join(next, "mesh.hcl"), newPolicy)
		out, err := runWeft(t, "policy", "plan", next, "--admin", m.ctl.Admin, "--data-dir", m.ctl.DataDir, "--no-color")
		if err != nil {
			t.Fatalf("plan: %v\n%s", err, out)
		}
		if !strings.Contains(out, "client -> secret") {
			t.Errorf("the plan does not name the flow client -> secret that becomes allowed:\n%s", out)
		}
		same, err := runWeft(t, "policy", "plan", m.policyDir, "--admin", m.ctl.Admin, "--data-dir", m.ctl.DataDir, "--no-color")
		if err != nil || strings.Contains(same, "client -> secret") {
			t.Errorf("planning the policy in force itself: %v\n%s", err, same)
		}
	})

	t.Run("a bad policy is rejected and the last good one stays in force", func(t *testing.T) {
		bad := filepath.Join(m.policyDir, "broken.hcl")
		harness.WriteFile(t, bad, "intention \"client\" \"secret\" {\n  action = \"maybe\"\n}\n")
		m.ctl.WaitFor(t, "the bad policy to be rejected", 30*time.Second, func(s *harness.Status) bool { return s.PolicyError != "" })
		// The diagnostic is a log record with its file and line (issue 14).
		if log := m.ctl.Out.String(); !strings.Contains(log, "broken.hcl line=2 ") {
			t.Errorf("the controller's log does not point at broken.hcl line 2:\n%s", log)
		}
		if err := m.callWeb(ctx); err != nil {
			t.Errorf("call after a bad policy: %v", err)
		}
		if code, _, _ := harness.Get(ctx, m.upstream("9003")); code != 403 {
			t.Errorf("client -> secret after the bad policy = %d, want still 403", code)
		}
		os.Remove(bad)
		m.ctl.WaitFor(t, "the policy error to clear", 30*time.Second, func(s *harness.Status) bool { return s.PolicyError == "" })
	})

	t.Run("a killed adapter plugin is restarted and the mesh converges", func(t *testing.T) {
		s, _ := m.ctl.Status()
		if len(s.Adapters) != 1 || !pidAlive(s.Adapters[0].Pid) {
			t.Fatalf("adapters = %+v, want one running", s.Adapters)
		}
		old := s.Adapters[0]
		if err := killPid(old.Pid); err != nil {
			t.Fatal(err)
		}
		s = m.ctl.WaitFor(t, "the adapter to be restarted", 60*time.Second, func(s *harness.Status) bool {
			return len(s.Adapters) == 1 && s.Adapters[0].Running && s.Adapters[0].Restarts > old.Restarts && s.Adapters[0].Pid != old.Pid
		})
		m.ctl.WaitFor(t, "the mesh to converge again", 60*time.Second, harness.Converged(5))
		if err := m.callWeb(ctx); err != nil {
			t.Errorf("call after the adapter restart: %v", err)
		}
	})

	t.Run("with the controller killed, calls keep succeeding, and it resyncs on return", func(t *testing.T) {
		m.ctl.Kill(t)
		for i := 0; i < 5; i++ {
			if err := m.callWeb(ctx); err != nil {
				t.Fatalf("call %d with the controller down: %v", i, err)
			}
		}
		m.ctl = m.ctl.Restart()
		m.ctl.WaitFor(t, "the sidecars to resync with the restarted controller", 90*time.Second, harness.Converged(5))
		if err := m.callWeb(ctx); err != nil {
			t.Errorf("call after the controller returned: %v", err)
		}
	})

	t.Run("stopping the controller stops every process it started", func(t *testing.T) {
		pids := instancePids(t, m.ctl.DataDir)
		if len(pids) == 0 {
			t.Fatal("found no instance processes in the local adapter's state")
		}
		m.ctl.Stop()
		deadline := time.Now().Add(30 * time.Second)
		for _, pid := range pids {
			for pidAlive(pid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // waiting on process exit: there is no other signal for a non-child
			}
			if pidAlive(pid) {
				t.Errorf("process %d still runs after the controller stopped", pid)
			}
		}
	})
}

func foreignCert(t *testing.T, spiffeID string) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	u, _ := url.Parse(spiffeID)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
