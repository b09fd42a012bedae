package runner

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/bench/load"

	policyhcl "github.com/weftmesh/weft/hcl"
)

func TestAppSplit(t *testing.T) {
	for _, tc := range []struct {
		n, apps int
		want    []int
	}{
		{1, 5, []int{1}},
		{2, 5, []int{1, 1}},
		{10, 5, []int{2, 2, 2, 2, 2}},
		{50, 5, []int{10, 10, 10, 10, 10}},
		{7, 3, []int{3, 2, 2}},
		{4, 0, []int{4}},
	} {
		if got := appSplit(tc.n, tc.apps); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("appSplit(%d, %d) = %v, want %v", tc.n, tc.apps, got, tc.want)
		}
	}
}

func TestSelectModelSizes(t *testing.T) {
	sizes := []int{1, 10, 50}
	for _, tc := range []struct {
		prefixes []string
		want     []int
	}{
		{nil, sizes},
		{[]string{"models"}, sizes},
		{[]string{"models-1"}, []int{1, 10}},
		{[]string{"models-50", "http1"}, []int{50}},
		{[]string{"http1"}, nil},
	} {
		if got := SelectModelSizes(sizes, tc.prefixes); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SelectModelSizes(%v) = %v, want %v", tc.prefixes, got, tc.want)
		}
	}
}

// The generated policy is one the real controller loads: the caller with
// an upstream and an intention per application.
func TestModelsPolicyLoads(t *testing.T) {
	p, diags, _ := policyhcl.LoadSources(map[string][]byte{"mesh.hcl": []byte(modelsPolicy(3))})
	if diags.HasErrors() || p == nil {
		t.Fatalf("the policy does not load: %v", diags)
	}
	if len(p.Services) != 4 || len(p.Services[modelsCaller].Upstreams) != 3 || len(p.Intentions) != 3 {
		t.Errorf("services %d, caller's upstreams %d, intentions %d; want 4, 3, 3", len(p.Services), len(p.Services[modelsCaller].Upstreams), len(p.Intentions))
	}
	if u := p.Services[modelsCaller].Upstreams[2]; u.Service != modelsApp(2) || u.LocalPort != modelsUpstreamPort(2) {
		t.Errorf("third upstream %+v, want %s on %d", u, modelsApp(2), modelsUpstreamPort(2))
	}
}

// The table and the targets' verdicts, from a report made up here.
func TestModelsReportRendered(t *testing.T) {
	run := func(n int, model string, proxies int, rssMiB float64, p50, p99 float64) ModelRun {
		return ModelRun{Instances: n, Model: model, Apps: min(n, 5), Proxies: proxies, IdleRSSKiB: int64(rssMiB * 1024), LoadRSSKiB: int64(rssMiB * 1024), PssKiB: 1024,
			DirectP50Us: 500, DirectP99Us: 1000, MeshP50Us: 500 + p50, MeshP99Us: 1000 + p99, AddedP50Us: p50, AddedP99Us: p99}
	}
	c := &ModelsReport{Rate: 100, ConnsPerApp: 2, Duration: "6s", Warmup: "1s", Quiet: true, Runs: []ModelRun{
		run(10, "sidecar", 10, 200, 400, 800), run(10, "application", 5, 105, 400, 800), run(10, "node", 1, 26, 420, 920),
		run(50, "sidecar", 50, 1000, 400, -50), run(50, "application", 5, 130, 400, 800), run(50, "node", 1, 44, 500, 800),
	}}
	md := c.Markdown()
	for _, want := range []string{
		"| 10 | node | 5 | 1 | 26.0 | 26.0 | 1.0 | 0.0 | 0.0 | 500 / 920 | 1000 / 1920 | 420 / 920 | 1.05x / 1.15x |",
		"| 50 | application | 5 | 5 | 130.0 | 130.0 | 1.0 | 0.0 | 0.0 | 500 / 900 | 1000 / 1800 | 400 / 800 | 1.00x / n/a |",
		"- n = 10: node proxy 26.0 MiB under load = 1.30x one sidecar's 20.0 MiB (idle: 1.30x): target under 2x met; added latency p50 1.05x, p99 1.15x the sidecars': target within 1.1x **not met**.",
		"- n = 50: node proxy 44.0 MiB under load = 2.20x one sidecar's 20.0 MiB (idle: 2.20x): target under 2x **not met**; added latency p50 1.25x, p99 n/a the sidecars': target within 1.1x not judged",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the table lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "not reportable") {
		t.Errorf("a quiet report is marked not reportable:\n%s", md)
	}
	ts := c.Targets()
	if len(ts) != 2 || !ts[0].MemoryMet() || ts[1].MemoryMet() || ts[0].LatencyVerdict() != "**not met**" {
		t.Errorf("targets %+v", ts)
	}
	c.Runs[5].AddedP50Us = -20 // the node run's direct slower than its mesh: no ratio
	if v := c.Targets()[1].LatencyVerdict(); !strings.HasPrefix(v, "not judged") {
		t.Errorf("a negative added latency judged: %q", v)
	}
	if c.Quiet = false; !strings.Contains(c.Markdown(), "**machine busy: not reportable**") || !strings.Contains(c.Markdown(), "the verdicts are indicative only") {
		t.Errorf("a busy report is not marked")
	}
}

// The scenario with two instances on the real controller's local
// adapter, in each model: the right number of proxy processes serve
// them, every figure is filled, results.md and results.json carry them,
// and no process of the meshes outlives the scenario. No number is
// asserted against a goal: speed goals live in make bench.
func TestModelsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weft and starts controllers, apps and proxies")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset is not installed")
	}
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "./cmd/weft", "./cmd/weft-proxy", "./test/bench/cmd/weft-load")
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log strings.Builder
	start := time.Now()
	m, err := Models(ctx, ModelsOptions{Bin: bin, Out: out, Sizes: []int{2}, Apps: 2, Rate: 50, ConnsPerApp: 1, Reps: 2,
		Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, FirstAddress: "127.0.161.2", MaxBusy: 100, MaxForeign: 100, Force: true, Log: &log})
	if err != nil {
		t.Fatalf("models: %v\n%s", err, log.String())
	}
	t.Logf("the scenario took %v\n%s", time.Since(start).Round(time.Millisecond), log.String())
	if len(m.Runs) != 3 {
		t.Fatalf("%d runs, want 3 (one per model)", len(m.Runs))
	}
	for i, want := range []struct {
		model   string
		proxies int
	}{{"sidecar", 2}, {"application", 2}, {"node", 1}} {
		r := m.Runs[i]
		if r.Model != want.model || r.Proxies != want.proxies || r.Apps != 2 || r.Instances != 2 {
			t.Errorf("run %d: %s with %d proxies for %d instances in %d applications, want %s with %d for 2 in 2", i, r.Model, r.Proxies, r.Instances, r.Apps, want.model, want.proxies)
		}
		if r.IdleRSSKiB <= 0 || r.LoadRSSKiB <= 0 || r.PssKiB <= 0 || r.PssKiB > r.LoadRSSKiB {
			t.Errorf("%s: memory idle %d, load %d, Pss %d KiB", r.Model, r.IdleRSSKiB, r.LoadRSSKiB, r.PssKiB)
		}
		for name, rs := range map[string][]*load.Result{"direct": r.Direct, "mesh": r.Mesh} {
			if len(rs) != 2 {
				t.Errorf("%s, %s: %d results, want 2 (repetitions)", r.Model, name, len(rs))
			}
			for _, res := range rs {
				if res == nil || res.Requests == 0 || res.Errors != 0 || res.Latency.P50 <= 0 {
					t.Errorf("%s, %s: %+v", r.Model, name, res)
				}
			}
		}
		if r.MeshP50Us <= 0 || r.DirectP50Us <= 0 || r.AddedP50Us != r.MeshP50Us-r.DirectP50Us {
			t.Errorf("%s: medians direct %v, mesh %v, added %v", r.Model, r.DirectP50Us, r.MeshP50Us, r.AddedP50Us)
		}
		if r.CPUPct < 0 || r.IdleCPUPct < 0 || r.ConvergedSeconds <= 0 {
			t.Errorf("%s: CPU %v, idle %v, converged in %vs", r.Model, r.CPUPct, r.IdleCPUPct, r.ConvergedSeconds)
		}
	}
	if left := processesIn(mustAbs(t, filepath.Join(out, "work-models", "node-2"))); len(left) > 0 {
		t.Errorf("processes of the node model's mesh still run: %v", left)
	}
	md, err := WriteFiles(out, &Report{Machine: DescribeMachine(), Models: m})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "| 2 | node | 2 | 1 |") || !strings.Contains(md, "- n = 2: node proxy") {
		t.Errorf("results.md lacks the models rows:\n%s", md)
	}
	var back struct {
		Models *ModelsReport `json:"models"`
	}
	b, _ := json.Marshal(&Report{Models: m})
	if err := json.Unmarshal(b, &back); err != nil || back.Models == nil || len(back.Models.Runs) != 3 {
		t.Errorf("results.json: %v %+v", err, back.Models)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
