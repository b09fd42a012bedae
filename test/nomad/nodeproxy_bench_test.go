package nomad

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

const apiOnlyPolicy = `mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "api" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "api"
  }
}
`

// BenchmarkNomadProxyMemory runs n api instances on the real Nomad agent,
// once each with its own sidecar task and once in node mode served by the
// node-proxy system job (the example files), and reports the resident
// memory of all their proxies once every instance is served (idle: no
// traffic). One run per size is the measurement: -benchtime 1x.
//
//	go test -count=1 -run '^$' -bench BenchmarkNomadProxyMemory -benchtime 1x ./test/nomad/
func BenchmarkNomadProxyMemory(b *testing.B) {
	if testing.Short() {
		b.Skip("runs Nomad, a controller and proxies")
	}
	for _, n := range []int{2, 10} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			for range b.N {
				side, node := nomadProxyMemory(b, n)
				b.ReportMetric(side, "MiB-sidecars")
				b.ReportMetric(node, "MiB-nodeproxy")
			}
		})
	}
}

// nomadProxyMemory answers the RSS (MiB) of n sidecars and of one node
// proxy serving n instances.
func nomadProxyMemory(b *testing.B, n int) (sidecars, nodeProxy float64) {
	agent := nomadtest.Start(b)
	dir := b.TempDir()
	e := &meshEnv{agent: agent, listen: harness.FreeAddr(b), policyDir: harness.WritePolicy(b, dir, apiOnlyPolicy)}
	o := harness.WeftController(binDir, filepath.Join(dir, "weft"), e.listen, harness.FreeAddr(b),
		"--policy-dir", e.policyDir, "--adapter", "nomad="+agent.Addr, "--adapter-option", "nomad.token_file="+agent.TokenFile(b))
	o.Process = harness.Options{Env: []string{"NOMAD_TOKEN="}}
	e.ctl = harness.StartController(b, o)
	e.roots = e.ctl.WaitCACert(b)

	agent.Run(b, meshJob("api", n, e.listen, e.roots))
	agent.Running(b, "default", "api", n, 3*time.Minute)
	e.ctl.WaitFor(b, fmt.Sprintf("%d api sidecars", n), 3*time.Minute, converged(n))
	for pid := range weftProxies("--controller", e.listen, "--instance") {
		sidecars += procRSS(b, pid)
	}
	agent.Stop(b, "default", "api")
	harness.Eventually(b, "the sidecar-mode api gone", 2*time.Minute, func() error {
		if ps := weftProxies("--controller", e.listen, "--instance"); len(ps) > 0 {
			return fmt.Errorf("%d sidecars still run", len(ps))
		}
		return nil
	})

	examples, err := filepath.Abs("../../examples/nomad")
	if err != nil {
		b.Fatal(err)
	}
	c := agent.Client()
	submitExample(b, c, filepath.Join(examples, "node-proxy.nomad.hcl"), map[string]string{
		"weft_bin": binDir, "controller": e.listen, "trust_bundle": e.roots,
	})
	src, err := os.ReadFile(filepath.Join(examples, "api-node.nomad.hcl"))
	if err != nil {
		b.Fatal(err)
	}
	job := filepath.Join(b.TempDir(), "api-node.nomad.hcl")
	if err := os.WriteFile(job, []byte(strings.Replace(string(src), "count = 2", fmt.Sprintf("count = %d", n), 1)), 0o644); err != nil {
		b.Fatal(err)
	}
	submitExample(b, c, job, map[string]string{"weft_bin": binDir})
	agent.Running(b, "default", "api", n, 3*time.Minute)
	e.ctl.WaitFor(b, fmt.Sprintf("%d node-mode api instances served by the node proxy", n), 3*time.Minute, converged(n))
	ps := weftProxies("--node", "--controller", e.listen)
	if len(ps) != 1 {
		b.Fatalf("%d node proxies, want 1", len(ps))
	}
	for pid := range ps {
		nodeProxy = procRSS(b, pid)
	}
	b.Logf("%d instances: %d sidecars %.1f MiB in all; one node proxy %.1f MiB", n, n, sidecars, nodeProxy)
	return sidecars, nodeProxy
}

// submitExample registers the job file at path with vars, as `nomad job
// run -var ...` (runExample's, for a benchmark).
func submitExample(tb testing.TB, c *api.Client, path string, vars map[string]string) {
	tb.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var v strings.Builder
	for k, val := range vars {
		fmt.Fprintf(&v, "%s = %q\n", k, val)
	}
	job, err := c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(src), Variables: v.String(), Canonicalize: true})
	if err != nil {
		tb.Fatalf("parsing %s: %v", path, err)
	}
	if _, _, err := c.Jobs().Register(job, nil); err != nil {
		tb.Fatalf("registering %s: %v", path, err)
	}
}
