package nomad

import (
	"flag"
	"os"
	"testing"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(harness.Main(m, harness.MeshBinaries(nil), func(dir string) error {
		binDir = dir
		_, err := nomadtest.Binary()
		return err
	}))
}

// startController starts a `weft controller` running the nomad adapter,
// with NOMAD_TOKEN empty in its environment.
func startController(t *testing.T, dataDir, listen, admin string, args ...string) *harness.Controller {
	t.Helper()
	o := harness.WeftController(binDir, dataDir, listen, admin, args...)
	o.Process = harness.Options{Env: []string{"NOMAD_TOKEN="}}
	return harness.StartController(t, o)
}

// converged: want instances known and passing (their allocations run),
// each with a sidecar that acknowledged its current configuration.
func converged(want int) func(*harness.Status) bool {
	acked := harness.Converged(want)
	return func(s *harness.Status) bool {
		if !acked(s) {
			return false
		}
		for _, in := range s.Instances {
			if in.Health != "passing" {
				return false
			}
		}
		return true
	}
}
