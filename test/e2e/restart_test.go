package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// restartPolicy: client calls api; api runs under the local adapter and
// under the file adapter (examples/adapter-file, a real second plugin
// process). The file adapter's workloads have no binding syntax of their
// own, so the mesh is permissive.
const restartPolicy = `
mesh {
  trust_domain     = "weft.test"
  default_action   = "deny"
  identity_binding = "permissive"
}
service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "api" { local_port = 9101 }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
}
intention "client" "api" { action = "allow" }
`

// After each restart of the controller (killed, so the local adapter's
// sidecars keep running and reconnect), no sidecar applies a configuration
// that lacks the other adapter's endpoints: every version the client's
// sidecar applied (and so ACKed), as its log records it with its endpoint
// counts, holds both api endpoints, the local adapter's and the file
// adapter's. The controller holds configurations back until every
// configured adapter has sent its first snapshot (core/controller Run).
func TestControllerRestartServesEveryAdapter(t *testing.T) {
	dir := t.TempDir()
	instances := filepath.Join(dir, "instances.json")
	harness.WriteFile(t, instances, `{"instances": [
  {"id": "api-file-0", "service": "api", "address": "127.0.79.40", "ports": {"app": 8080, "mesh": 21099, "upstream:store": 9200}, "health": "passing"}
]}`)
	app := filepath.Join(binDir, "weft-demo-app")
	ctl := harness.StartLocalMesh(t, binDir, dir, restartPolicy, harness.Workload("client", app)+harness.Workload("api", app), "127.0.79.2",
		fileAdapterArgs(t, dir, instances)...)

	// Both adapters' instances known, the two local sidecars acknowledged.
	converged := func(s *harness.Status) bool {
		return len(s.Instances) == 3 && len(s.Sidecars) == 2 && s.Acked()
	}
	ctl.WaitFor(t, "both adapters' instances and the sidecars' ACKs", 90*time.Second, converged)
	logPath := filepath.Join(ctl.DataDir, "adapters", "local", "logs", "client-0.proxy.log")
	// While the mesh first comes up, the local api instance is left out
	// until its process runs (its health); what the restarts must not do
	// is serve a version without either adapter's endpoints.
	var first int
	// Polling the sidecar's log: it has no other record of what it applied.
	harness.Eventually(t, "the client's sidecar to log a version with both api endpoints", 30*time.Second, func() error {
		got := ackedVersions(t, logPath)
		if first = len(got); first == 0 || got[first-1].endpoints != "api=2" {
			return fmt.Errorf("applied %+v, want the last with api=2", got)
		}
		return nil
	})

	const restarts = 3
	for i := range restarts {
		before := ackedVersions(t, logPath)
		ctl.Kill(t)
		ctl.Controller = ctl.Restart()
		ctl.WaitFor(t, fmt.Sprintf("the sidecars to resync after restart %d", i+1), 90*time.Second, converged)
		// Wait for the client's sidecar to apply the restarted
		// controller's configuration (its versions are new).
		harness.Eventually(t, "the client's sidecar to apply a version from the restarted controller", 30*time.Second, func() error {
			if n := len(ackedVersions(t, logPath)); n <= len(before) {
				return fmt.Errorf("%d applied versions, as before the restart", n)
			}
			return nil
		})
	}

	applied := ackedVersions(t, logPath)[first:]
	t.Logf("the client's sidecar applied %d versions over %d controller restarts: %+v", len(applied), restarts, applied)
	if len(applied) < restarts {
		t.Fatalf("the client's sidecar applied %d versions after the first convergence, want at least %d (one per restart)", len(applied), restarts)
	}
	for _, a := range applied {
		if a.endpoints != "api=2" {
			t.Errorf("the client's sidecar applied version %s with endpoints %q, want api=2 (the local and the file adapter's)", a.version, a.endpoints)
		}
	}

	// The file adapter's instance has an upstream port for a service the
	// policy does not declare: `weft status` names it, with the count.
	out, stderr, code := ctl.RunWeft(t, filepath.Join(binDir, "weft"), "status")
	for _, want := range []string{"DROPPED: 1 (undeclared_upstream 1)", "file     api-file-0  undeclared_upstream", `no upstream "store" in service "api"`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("weft status (exit %d) lacks %q:\n%s\n%s", code, want, out, stderr)
		}
	}
}

type appliedVersion struct{ version, endpoints string }

var appliedLine = regexp.MustCompile(`applied config version.*version=(\d+).*endpoints="?([^"\n]*)"?`)

// ackedVersions reads the versions a sidecar applied, and ACKed, from its
// log, with the endpoint counts of each.
func ackedVersions(t *testing.T, logPath string) []appliedVersion {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("reading the sidecar's log: %v", err)
	}
	var out []appliedVersion
	for _, line := range strings.Split(string(b), "\n") {
		if m := appliedLine.FindStringSubmatch(line); m != nil {
			out = append(out, appliedVersion{version: m[1], endpoints: m[2]})
		}
	}
	return out
}
