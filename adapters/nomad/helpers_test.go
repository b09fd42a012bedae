package nomad

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// roleEnv makes this test binary serve the adapter as a plugin.
const roleEnv = "WEFT_NOMAD_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "plugin" {
		sdk.Serve(New())
		return
	}
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// The agent is shared by the package's tests: starting one takes seconds.
var (
	sharedMu  sync.Mutex
	shared    *nomadtest.Agent
	sharedErr error
)

// sharedAgent starts the package's Nomad agent on first use. It is
// stopped when the package's tests are done.
func sharedAgent(t *testing.T) *nomadtest.Agent {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real Nomad agent; skipped with -short")
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = nomadtest.Launch()
	}
	if sharedErr != nil {
		t.Fatalf("starting the Nomad agent: %v", sharedErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nomad agent log (tail):\n%s", shared.LogTail())
		}
	})
	return shared
}

func stopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Close()
	}
}

// sleepJob is a raw_exec job whose tasks sleep, in a group with the ports
// of a meshed service.
func sleepJob(ns, name string, count int) string {
	return fmt.Sprintf(`job %[2]q {
  namespace   = %[1]q
  datacenters = ["dc1"]
  group "g" {
    count = %[3]d
    network {
      port "app" {}
      port "mesh" {}
      port "upstream_db" {}
    }
    service {
      name     = %[2]q
      provider = "nomad"
      port     = "app"
      tags     = ["version=v1", "plain"]
    }
    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
      kill_timeout = "1s"
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
`, ns, name, count)
}

func ids(allocs []*api.AllocationListStub, service string) []string {
	var out []string
	for _, a := range allocs {
		out = append(out, InstanceID(a.ID, service))
	}
	return out
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
