package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

func runWeft(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "weft"), args...).CombinedOutput()
	return string(out), err
}

// Bad input at the command line: each error names the file and line (or the
// address) and says what to do.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policy")
	bad := "service \"web\" {\n  protocol = \"http\"\n  upstream \"ghost\" { local_port = 9001 }\n}\n"
	harness.WriteFile(t, filepath.Join(policyDir, "web.hcl"), bad)

	t.Run("policy validate points at the unknown upstream", func(t *testing.T) {
		out, err := runWeft(t, "policy", "validate", policyDir)
		if err == nil {
			t.Fatalf("validate succeeded on a bad policy:\n%s", out)
		}
		for _, want := range []string{"Unknown upstream service", "web.hcl:3,", `upstream "ghost"`} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("the controller refuses to start on a bad policy", func(t *testing.T) {
		out, err := runWeft(t, "controller", "--policy-dir", policyDir, "--data-dir", filepath.Join(dir, "data"),
			"--listen", harness.FreeAddr(t), "--admin", harness.FreeAddr(t))
		if err == nil {
			t.Fatalf("the controller started on a bad policy:\n%s", out)
		}
		if !strings.Contains(out, "web.hcl:3,") || !strings.Contains(out, "weft policy validate") {
			t.Errorf("output does not point at the file or say how to check it:\n%s", out)
		}
	})

	t.Run("the sidecar API's port in use", func(t *testing.T) {
		good := filepath.Join(dir, "good")
		harness.WriteFile(t, filepath.Join(good, "mesh.hcl"), "mesh {}\n")
		busy := harness.FreeAddr(t)
		l := listen(t, busy)
		defer l.Close()
		out, err := runWeft(t, "controller", "--policy-dir", good, "--data-dir", filepath.Join(dir, "data2"), "--listen", busy, "--admin", harness.FreeAddr(t))
		if err == nil || !strings.Contains(out, busy) || !strings.Contains(out, "--listen") {
			t.Errorf("want an error naming %s and the --listen flag, got %v:\n%s", busy, err, out)
		}
	})

	t.Run("an unpinned third-party plugin is refused with its SHA-256", func(t *testing.T) {
		good := filepath.Join(dir, "good")
		plugins := t.TempDir()
		bin := filepath.Join(plugins, "weft-adapter-file")
		os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755)
		sum := sha256.Sum256([]byte("#!/bin/sh\nexit 0\n"))
		hexSum := hex.EncodeToString(sum[:])
		out, err := runWeft(t, "controller", "--policy-dir", good, "--data-dir", filepath.Join(dir, "data4"),
			"--listen", harness.FreeAddr(t), "--admin", harness.FreeAddr(t), "--plugin-dir", plugins, "--adapter", "file=x.json")
		if err == nil {
			t.Fatalf("the controller started an unpinned plugin:\n%s", out)
		}
		for _, w := range []string{"is not pinned", hexSum, "sha256sum weft-adapter-file > weft-adapter-file.sha256", "--plugin-checksum file=sha256:" + hexSum} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		// A pin on the command line for something that is not a
		// third-party adapter is a mistake, said as such.
		out, err = runWeft(t, "controller", "--policy-dir", good, "--data-dir", filepath.Join(dir, "data4"),
			"--listen", harness.FreeAddr(t), "--admin", harness.FreeAddr(t), "--plugin-dir", plugins, "--adapter", "file=x.json",
			"--plugin-checksum", "file=sha256:1234")
		if err == nil || !strings.Contains(out, "64 hex digits") {
			t.Errorf("a short --plugin-checksum: %v\n%s", err, out)
		}
	})

	t.Run("a bad workloads file is reported by the adapter, with its line", func(t *testing.T) {
		good := filepath.Join(dir, "good")
		wl := filepath.Join(dir, "workloads.hcl")
		harness.WriteFile(t, wl, "service \"web\" {\n  command = \"/bin/true\"\n  port = 99999\n}\n")
		ctl := startController(t, filepath.Join(dir, "data3"), harness.FreeAddr(t), harness.FreeAddr(t), "--policy-dir", good, "--adapter", "local="+wl,
			"--adapter-option", "local.first_address=127.0.78.2")
		defer ctl.Stop()
		s := ctl.WaitFor(t, "the adapter to report the bad file", 60*time.Second, func(s *harness.Status) bool {
			return len(s.Adapters) == 1 && strings.Contains(s.Adapters[0].LastError, "workloads.hcl:3")
		})
		if len(s.Instances) != 0 {
			t.Errorf("instances from a bad workloads file: %+v", s.Instances)
		}
	})
}

// The controller's certificate carries the extra names sidecars dial it by.
func TestServerName(t *testing.T) {
	dir := t.TempDir()
	harness.WriteFile(t, filepath.Join(dir, "mesh.hcl"), "mesh {}\n")
	// The admin API on a loopback address of its own: the certificate
	// names it too.
	l, err := net.Listen("tcp", "127.0.77.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := l.Addr().String()
	l.Close()
	ctl := startController(t, filepath.Join(dir, "data"), harness.FreeAddr(t), admin, "--policy-dir", dir,
		"--server-name", "weft-controller.weft-system.svc")
	defer ctl.Stop()
	ctl.WaitFor(t, "the controller to serve", 30*time.Second, func(*harness.Status) bool { return true })
	pool := ctl.RootPool(t)
	for _, api := range []string{ctl.Listen, ctl.Admin} {
		for name, wantOK := range map[string]bool{"weft-controller.weft-system.svc": true, "localhost": true, "127.0.77.1": true, "elsewhere.example": false} {
			conn, err := tls.Dial("tcp", api, &tls.Config{RootCAs: pool, ServerName: name})
			if err == nil {
				conn.Close()
			}
			if (err == nil) != wantOK {
				t.Errorf("dialing the controller at %s as %s: %v, want success %v", api, name, err, wantOK)
			}
		}
	}
	if out, err := runWeft(t, "status", "--admin", "https://"+admin, "--data-dir", ctl.DataDir); err != nil {
		t.Errorf("weft status at https://%s: %v\n%s", admin, err, out)
	}
}
