package nomad

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
)

// checkedJob is a job whose group serves HTTP (python3's http.server on
// the app port) behind a native service with an http check of path,
// every interval: "/" passes, "/missing" fails (404), and an interval of
// an hour leaves the check pending (Nomad runs it first after half an
// interval).
func checkedJob(name, path, interval string) string {
	return fmt.Sprintf(`job %[1]q {
  group "g" {
    network {
      port "app" {}
      port "mesh" {}
    }
    service {
      name     = %[1]q
      provider = "nomad"
      port     = "app"
      check {
        name     = "http"
        type     = "http"
        path     = %[2]q
        interval = %[3]q
        timeout  = "1s"
      }
    }
    task "web" {
      driver = "raw_exec"
      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "--bind", "127.0.0.1", "${NOMAD_PORT_app}"]
      }
      kill_timeout = "1s"
      resources {
        cpu    = 20
        memory = 64
      }
      service {
        name     = "%[1]s-admin"
        provider = "nomad"
        port     = "app"
        tags     = ["weft_mesh=false"]
        check {
          name     = "tcp"
          type     = "tcp"
          interval = "1s"
          timeout  = "1s"
        }
      }
    }
  }
}
`, name, path, interval)
}

// TestRecordChecks records what a real Nomad 1.6.1 answers for three jobs
// whose meshed service has an http check that passes (checked-ok), fails
// (checked-bad) and has not run yet (checked-new), as testdata/checks.json
// (go test -run TestRecordChecks -record). Without -record it is skipped.
func TestRecordChecks(t *testing.T) {
	if !*record {
		t.Skip("records testdata with -record")
	}
	agent := sharedAgent(t)
	agent.Run(t, checkedJob("checked-ok", "/", "1s"))
	agent.Run(t, checkedJob("checked-bad", "/missing", "1s"))
	agent.Run(t, checkedJob("checked-new", "/", "1h"))
	want := map[string]string{}
	for job, status := range map[string]string{"checked-ok": checkSuccess, "checked-bad": checkFailure, "checked-new": checkPending} {
		a := agent.Running(t, "default", job, 1, time.Minute)[0]
		want[a.ID] = status
	}
	harness.Eventually(t, "every check's result", time.Minute, func() error {
		for id, status := range want {
			res, err := agent.Client().Allocations().Checks(id, nil)
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Service != "checked-new-admin" && r.Check == "http" && r.Status != status || r.Check == "tcp" && r.Status != checkSuccess {
					return fmt.Errorf("allocation %s check %s of %s is %s", id, r.Check, r.Service, r.Status)
				}
			}
		}
		return nil
	})

	st := recordState(t, agent)
	var keep []*api.ServiceRegistration
	for _, r := range st.Services {
		if want[r.AllocID] != "" {
			keep = append(keep, r)
		}
	}
	st.Services = keep
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "checks.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("recorded %d registrations, %d allocations, checks of %d\n", len(st.Services), len(st.Allocs), len(st.Checks))
}
