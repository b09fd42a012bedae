package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// checkMesh runs `weft check --probes=false --json` (the installation and
// the sidecars, without the port probes, which fail by design on a mesh
// without isolation) and returns its report and exit code.
func checkMesh(t *testing.T, m *tapMesh) (harness.CheckReport, string, int) {
	t.Helper()
	out, stderr, code := m.ctl.RunWeft(t, filepath.Join(binDir, "weft"), "check", "--probes=false", "--json")
	var rep harness.CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("weft check --json (exit %d) printed no report: %v\n%s\n%s", code, err, out, stderr)
	}
	return rep, stderr, code
}

// finding is the level of subject's check, "" when there is none.
func finding(rep harness.CheckReport, subject, check string) (level, detail string) {
	for _, f := range rep.Mesh {
		if f.Subject == subject && f.Check == check {
			return f.Level, f.Detail
		}
	}
	return "", ""
}

// waitMeshCheck runs checkMesh until done holds, for at most 60s.
func waitMeshCheck(t *testing.T, m *tapMesh, what string, done func(harness.CheckReport, int) bool) (harness.CheckReport, string, int) {
	t.Helper()
	var rep harness.CheckReport
	var stderr string
	var code int
	harness.Eventually(t, what, 60*time.Second, func() error {
		rep, stderr, code = checkMesh(t, m)
		if !done(rep, code) {
			return fmt.Errorf("exit %d, findings %+v\n%s", code, rep.Mesh, stderr)
		}
		return nil
	})
	return rep, stderr, code
}

// `weft check` judges the installation and every connected sidecar: it
// passes on a healthy mesh, and fails, saying what to do, when a sidecar
// NACKs its configuration, and when sidecars run another weft-proxy
// version with a clock 30s ahead.
func TestCheckSidecars(t *testing.T) {
	t.Run("healthy, then a NACK", func(t *testing.T) {
		m := startTapMesh(t, "127.0.102.60")
		rep, stderr, code := waitMeshCheck(t, m, "weft check to pass on a healthy mesh", func(r harness.CheckReport, code int) bool {
			l, _ := finding(r, "sidecar web-0", "config")
			return code == 0 && l == "ok"
		})
		if !rep.OK {
			t.Errorf("ok = false with exit 0: %s", stderr)
		}
		for _, inst := range []string{"client-0", "web-0", "secret-0"} {
			for _, check := range []string{"version", "certificate", "config", "clock"} {
				if l, d := finding(rep, "sidecar "+inst, check); l != "ok" {
					t.Errorf("sidecar %s %s: %s %s, want ok", inst, check, l, d)
				}
			}
		}
		if l, _ := finding(rep, "adapter local", "adapter"); l != "ok" {
			t.Errorf("adapter local: %q, want ok", l)
		}

		// A port the client's sidecar is then told to bind is taken: it
		// rejects the configuration and keeps its last good one.
		ln, err := net.Listen("tcp", net.JoinHostPort(m.client, "9009"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		harness.ReplaceFile(t, filepath.Join(m.policyDir, harness.PolicyFile),
			strings.Replace(tapPolicy, `upstream "secret" { local_port = 9003 }`, "upstream \"secret\" { local_port = 9003 }\n  upstream \"extra\" { local_port = 9009 }", 1)+
				"\nservice \"extra\" {\n  binding \"local\" { name = \"extra\" }\n  protocol = \"http\"\n}\n")
		rep, stderr, code = waitMeshCheck(t, m, "weft check to fail on the NACK", func(r harness.CheckReport, code int) bool {
			l, _ := finding(r, "sidecar client-0", "config")
			return code == 1 && l == "fail"
		})
		_, d := finding(rep, "sidecar client-0", "config")
		if !strings.Contains(d, "rejected (NACKed)") || !strings.Contains(d, "9009") || rep.OK {
			t.Errorf("the NACK finding says %q (ok %v)", d, rep.OK)
		}
		if !strings.Contains(stderr, "sidecar client-0 (config)") || !strings.Contains(stderr, "fix what the sidecar refused") {
			t.Errorf("weft check's error does not name the failure and what to do:\n%s", stderr)
		}
		t.Logf("weft check after the NACK: exit %d\n%s", code, stderr)
	})

	t.Run("another version, a clock 30s ahead", func(t *testing.T) {
		// A second weft-proxy, built for this test only with the
		// test-only variables of core/proxy/control set.
		root, err := harness.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "weft-proxy")
		build := exec.Command("go", "build", "-o", bad, "-ldflags",
			"-X github.com/weftmesh/weft/core/proxy/control.testVersion=0.0.0-old -X github.com/weftmesh/weft/core/proxy/control.testSkew=30s",
			"./cmd/weft-proxy")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the skewed weft-proxy: %v\n%s", err, out)
		}
		m := startTapMesh(t, "127.0.102.80", "--proxy-binary", bad)
		rep, stderr, code := waitMeshCheck(t, m, "weft check to fail on the version and the clock", func(r harness.CheckReport, code int) bool {
			l, _ := finding(r, "sidecar web-0", "clock")
			return code == 1 && l == "fail"
		})
		for _, inst := range []string{"client-0", "web-0", "secret-0"} {
			if l, d := finding(rep, "sidecar "+inst, "version"); l != "fail" || !strings.Contains(d, "weft-proxy 0.0.0-old") {
				t.Errorf("sidecar %s version: %s %q, want a failure naming 0.0.0-old", inst, l, d)
			}
			if l, d := finding(rep, "sidecar "+inst, "clock"); l != "fail" || !strings.Contains(d, "ahead of the controller's") {
				t.Errorf("sidecar %s clock: %s %q, want a failure saying it is ahead", inst, l, d)
			}
		}
		if !strings.Contains(stderr, "synchronise the clocks") || !strings.Contains(stderr, "run the same weft-proxy as the controller") {
			t.Errorf("weft check's error does not say what to do:\n%s", stderr)
		}
		t.Logf("weft check with the skewed sidecars: exit %d\n%s", code, stderr)
	})
}
