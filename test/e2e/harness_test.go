package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.MeshBinaries(map[string]string{"grpcapp": "./test/e2e/grpcapp", "weft-adapter-file": "./examples/adapter-file"}), func(dir string) error { binDir = dir; return nil }))
}

// startController starts the controller on the given addresses; it stops
// like Ctrl-C, and not stopping within 30s of SIGINT is a test error.
func startController(t *testing.T, dataDir, listen, admin string, args ...string) *harness.Controller {
	t.Helper()
	o := harness.WeftController(binDir, dataDir, listen, admin, args...)
	o.Process = harness.CtrlC
	return harness.StartController(t, o)
}

// clientWebPolicy lets client call web (through its sidecar's port 9001)
// and nothing else; clientWebWorkloads runs one demo app for each.
const clientWebPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "client" {
  binding "local" { name = "client" }
  protocol = "http"
  upstream "web" { local_port = 9001 }
}

service "web" {
  binding "local" { name = "web" }
  protocol = "http"
}

intention "client" "web" { action = "allow" }
`

func clientWebWorkloads() string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("client", app) + harness.Workload("web", app)
}

// startLocalMesh starts a controller on policy and the local adapter's
// workloads (harness.StartLocalMesh, in a temporary directory), whose
// instances get loopback addresses from firstAddr on. It returns the
// controller and the policy directory. Isolation is off (local.isolation =
// none): the tests call through the client's sidecar as if they were its
// app.
func startLocalMesh(t *testing.T, policy, workloads, firstAddr string, args ...string) (*harness.Controller, string) {
	t.Helper()
	m := harness.StartLocalMesh(t, binDir, t.TempDir(), policy, workloads, firstAddr,
		append([]string{"--adapter-option", "local.isolation=none"}, args...)...)
	return m.Controller, m.PolicyDir
}

// meshClient is a client of the controller's sidecar API (its TLS verified
// with the mesh's CA), closed at the end of the test.
func meshClient(t *testing.T, ctl *harness.Controller) meshapi.MeshClient {
	t.Helper()
	conn, err := grpc.NewClient(ctl.Listen, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ctl.RootPool(t), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return meshapi.NewMeshClient(conn)
}

// newCSR is a certificate request for a new P-256 key.
func newCSR(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func pidAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func killPid(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// instancePids reads the pids of every app and sidecar from the local
// adapter's state file.
func instancePids(t *testing.T, dataDir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "adapters", "local", "local-state.json"))
	if err != nil {
		t.Fatalf("reading the local adapter's state: %v", err)
	}
	var st struct {
		Instances []struct {
			App   struct{ PID int } `json:"app"`
			Proxy struct{ PID int } `json:"proxy"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("decoding the local adapter's state: %v", err)
	}
	var pids []int
	for _, in := range st.Instances {
		pids = append(pids, in.App.PID, in.Proxy.PID)
	}
	return pids
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
