package nomad

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// TestExamples follows examples/nomad/README.md on a dev agent: the
// controller as a Nomad job, the api job written by hand, the store and
// frontend jobs with the weft stanza submitted by weft nomad run, and a
// call that walks frontend -> api -> store. Only addresses and paths
// differ from the README's (the variables and flags it names), so that the
// test can run beside anything.
func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	c := agent.Client()
	examples, err := filepath.Abs("../../examples/nomad")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "weft")
	listen, admin := harness.FreeAddr(t), harness.FreeAddr(t)
	httpPort := strings.TrimPrefix(harness.FreeAddr(t), "127.0.0.1:")

	// README: nomad var put nomad/jobs/weft-controller token=$NOMAD_TOKEN
	if _, _, err := c.Variables().Create(&api.Variable{Namespace: "default", Path: "nomad/jobs/weft-controller",
		Items: api.VariableItems{"token": agent.Token}}, nil); err != nil {
		t.Fatal(err)
	}
	// README: nomad job run -var ... controller.nomad.hcl, then api.nomad.hcl
	runExample(t, c, filepath.Join(examples, "controller.nomad.hcl"), map[string]string{
		"weft_bin": binDir, "policy_dir": filepath.Join(examples, "policy"), "data_dir": dataDir,
		"nomad_addr": agent.Addr, "listen": listen, "admin": admin,
	})
	ctl := harness.Remote(admin, dataDir)
	ctl.WaitFor(t, "the controller job's admin API", 2*time.Minute, func(*harness.Status) bool { return true })
	roots := ctl.CACert()
	runExample(t, c, filepath.Join(examples, "api.nomad.hcl"), map[string]string{
		"weft_bin": binDir, "controller": listen, "trust_bundle": roots,
	})
	// README: weft nomad run ... store.nomad.hcl, frontend.nomad.hcl
	for _, job := range []struct{ file, extra string }{{"store.nomad.hcl", ""}, {"frontend.nomad.hcl", "http_port=" + httpPort}} {
		args := []string{"nomad", "run", "--controller", listen, "--trust-bundle", roots,
			"--proxy-command", filepath.Join(binDir, "weft-proxy"), "--var", "weft_bin=" + binDir}
		if job.extra != "" {
			args = append(args, "--var", job.extra)
		}
		cmd := exec.Command(filepath.Join(binDir, "weft"), append(args, filepath.Join(examples, job.file))...)
		cmd.Env = append(os.Environ(), "NOMAD_ADDR="+agent.Addr, "NOMAD_TOKEN="+agent.Token)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "registered") {
			t.Fatalf("weft nomad run %s: %v\n%s", job.file, err, out)
		}
	}
	for job, n := range map[string]int{"weft-controller": 1, "api": 2, "store": 1, "frontend": 1} {
		agent.Running(t, "default", job, n, 2*time.Minute)
	}
	ctl.WaitFor(t, "four meshed instances with their sidecars", 2*time.Minute, converged(4))

	// README: curl http://127.0.0.1:8080/call/api/call/store
	var chain map[string]any
	harness.Eventually(t, "frontend -> api -> store", 30*time.Second, func() error {
		return harness.GetJSON("http://"+net.JoinHostPort("127.0.0.1", httpPort)+"/call/api/call/store", &chain)
	})
	api1, _ := chain["response"].(map[string]any)
	store, _ := api1["response"].(map[string]any)
	if api1["service"] != "api" || store["service"] != "store" || store["caller"] != "spiffe://weft.local/ns/default/svc/api" {
		t.Errorf("the call chain %v: want frontend -> api -> store, store called by api's identity", chain)
	}
}

// runExample registers a job file with variables, as nomad job run -var.
func runExample(t *testing.T, c *api.Client, path string, vars map[string]string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v strings.Builder
	for k, val := range vars {
		fmt.Fprintf(&v, "%s = %s\n", k, strconv.Quote(val))
	}
	job, err := c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(src), Variables: v.String(), Canonicalize: true})
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	if _, _, err := c.Jobs().Register(job, nil); err != nil {
		t.Fatalf("registering %s: %v", path, err)
	}
}
