package nomad

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/test/harness"
)

// hostJob is a job file whose weft stanza opts out of bridge networking
// (network_mode = "host"). The app listens where the rendered job tells
// it: NOMAD_IP_app (127.0.0.1) and NOMAD_PORT_app (a port Nomad allocates
// on the node); it calls each upstream at NOMAD_ADDR_upstream_<name>, a
// Nomad-allocated port where its sidecar listens on 127.0.0.1. The shell
// reads those at run time: the rendered env block sets them, and another
// value of the same block could not interpolate them reliably.
func hostJob(name string, upstreams ...string) string {
	var ups strings.Builder
	run := "HOST=$NOMAD_IP_app PORT=$NOMAD_PORT_app"
	for _, u := range upstreams {
		fmt.Fprintf(&ups, "      upstream %q {}\n", u)
		v := strings.ReplaceAll(u, "-", "_")
		run += fmt.Sprintf(" UPSTREAM_%s=http://$NOMAD_ADDR_upstream_%s", strings.ToUpper(v), v)
	}
	run += " exec " + filepath.Join(binDir, "weft-demo-app")
	return fmt.Sprintf(`job %[1]q {
  group %[1]q {
    network {
      port "app" {}
    }
    weft {
      network_mode = "host"
%[2]s      sidecar {
        kill_timeout = "3s"
      }
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", %[3]q]
      }
      env {
        WEFT_SERVICE  = %[1]q
        WEFT_INSTANCE = "${NOMAD_ALLOC_ID}/%[1]s"
      }
      kill_timeout = "3s"
      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
`, name, ups.String(), run)
}

// weftStatusIsolation runs `weft status --json` against ctl and returns
// each instance's isolation.
func weftStatusIsolation(t *testing.T, ctl *harness.Controller) map[string]string {
	t.Helper()
	out, stderr, code := ctl.RunWeft(t, filepath.Join(binDir, "weft"), "status", "--json")
	var st struct {
		Instances []struct {
			ID        string `json:"id"`
			Isolation string `json:"isolation"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("weft status --json: exit %d, %v\n%s", code, err, stderr)
	}
	iso := map[string]string{}
	for _, in := range st.Instances {
		iso[in.ID] = in.Isolation
	}
	return iso
}
