package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// conformanceFixture runs the fake app under fake sidecars (this test
// binary plays both), so no controller is needed.
func conformanceFixture(t *testing.T) sdktest.Fixture {
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 2, "web": 1}, "")
	bad := s.request(t)
	bad.Source = filepath.Join(s.dir, "bad.hcl")
	if err := os.WriteFile(bad.Source, []byte("service \"api\" {\n  command = \"./app\"\n  port = 0\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return sdktest.Fixture{
		Good:    s.request(t),
		Bad:     bad,
		WantIDs: []string{"api-0", "api-1", "web-0"},
		Change: func(t *testing.T) []string {
			s.writeWorkloads(t, map[string]int{"api": 1, "db": 1}, "")
			return []string{"api-0", "db-0"}
		},
	}
}

func TestConformanceInMemory(t *testing.T) {
	sdktest.Run(t, sdktest.InMemory(func() sdk.Adapter {
		a := newAdapter(hclog.NewNullLogger())
		a.filePoll, a.procPoll, a.minBackoff = 50*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond
		return a
	}), conformanceFixture)
}

// Over a real plugin process: this test binary serves the adapter with
// sdk.Serve, as `weft adapter local` does.
func TestConformanceOverPlugin(t *testing.T) {
	self := testBinary(t)
	sdktest.Run(t, sdktest.OverPlugin(func() *exec.Cmd {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), roleEnv+"=plugin")
		return cmd
	}), conformanceFixture)
}

// Through the real binary: `weft adapter local`, as the controller
// launches it. Building cmd/weft takes a while, so -short skips it.
func TestConformanceWeftAdapterLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/weft; skipped with -short")
	}
	weft := filepath.Join(t.TempDir(), "weft")
	build := exec.Command("go", "build", "-o", weft, "github.com/weftmesh/weft/cmd/weft")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/weft: %v\n%s", err, out)
	}
	sdktest.Run(t, sdktest.OverPlugin(func() *exec.Cmd {
		return exec.Command(weft, "adapter", "local")
	}), conformanceFixture)
}
