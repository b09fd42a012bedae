package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

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

// checkReport is what `weft check --json` prints (cmd/weft's CheckReport).
type checkReport struct {
	OK      bool `json:"ok"`
	Results []struct {
		Instance string `json:"instance"`
		Address  string `json:"address"`
		Kind     string `json:"kind"`
		Upstream string `json:"upstream"`
		OK       bool   `json:"ok"`
		Reason   string `json:"reason"`
	} `json:"results"`
	Skipped []string `json:"skipped"`
}

// adminEnv is the test's environment without the variables that would
// point a weft command at another controller than its flags.
func adminEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEFT_") {
			env = append(env, kv)
		}
	}
	return env
}

// weftCmd runs the weft binary with args against ctl's admin API and
// returns its standard output, its standard error and its exit code.
func weftCmd(t *testing.T, ctl *harness.Controller, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "--admin", ctl.URL(), "--data-dir", ctl.DataDir)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "weft"), args...)
	cmd.Env = adminEnv()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		code = exit.ExitCode()
	default:
		t.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String(), code
}

// weftCheck runs `weft check --json` against ctl, logs its results as a
// table and returns them, its exit code and its standard error.
func weftCheck(t *testing.T, ctl *harness.Controller) (checkReport, int, string) {
	t.Helper()
	start := time.Now()
	out, stderr, code := weftCmd(t, ctl, "check", "--json")
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("weft check --json (exit %d) printed no report: %v\n%s\n%s", code, err, out, stderr)
	}
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tPORT\tKIND\tRESULT\tREASON")
	for _, r := range rep.Results {
		result := "OK"
		if !r.OK {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Instance, r.Address, strings.TrimSpace(r.Kind+" "+r.Upstream), result, r.Reason)
	}
	tw.Flush()
	t.Logf("weft check --json: exit %d in %v, %d probes, skipped %v\n%s%s", code, time.Since(start).Round(time.Millisecond), len(rep.Results), rep.Skipped, table.String(), stderr)
	return rep, code, stderr
}

// checkRows maps the probes of one instance, "kind" (or "outbound
// <upstream>"), to the address probed.
func checkRows(rep checkReport, instance string) map[string]string {
	rows := map[string]string{}
	for _, r := range rep.Results {
		if r.Instance == instance {
			rows[strings.TrimSpace(r.Kind+" "+r.Upstream)] = r.Address
		}
	}
	return rows
}

// weftStatusIsolation runs `weft status --json` against ctl and returns
// each instance's isolation.
func weftStatusIsolation(t *testing.T, ctl *harness.Controller) map[string]string {
	t.Helper()
	out, stderr, code := weftCmd(t, ctl, "status", "--json")
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
