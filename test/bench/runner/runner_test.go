package runner

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildBinaries builds weft-proxy, weft-load and weft-bench into a
// temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "./cmd/weft-proxy", "./test/bench/cmd/weft-load", "./test/bench/cmd/weft-bench")
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
	return bin
}

// The suite runs end to end with tiny durations and writes well-formed
// results. No number is asserted: speed goals live in make bench.
func TestSuiteSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts proxies")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset is not installed")
	}
	cands := []string{"direct", "weft"}
	if _, err := exec.LookPath("haproxy"); err == nil {
		cands = append(cands, "haproxy")
	} else {
		t.Log("haproxy is not installed (make bench installs it): running without it")
	}
	bin := buildBinaries(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log strings.Builder
	o := Options{Bin: bin, Out: out, Reps: 1, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
		IdleConns: 20, BulkEndpoints: 50, MaxBusy: 100, Force: true, Only: cands,
		Scenarios: []string{"http1-1k-1000rps-c16", "http1-1k-max", "http1-trace", "grpc", "tcp"}, Log: &log}
	r := &Report{Machine: DescribeMachine()}
	if err := DataPlane(ctx, o, r); err != nil {
		t.Fatalf("data plane: %v\n%s", err, log.String())
	}
	cp, err := ControlPlane(ctx, CPOptions{Bin: bin, Out: out, Shape: CPShape{Services: 20, PerService: 3, Sidecars: 20, Upstreams: 2}, Changes: 5, MaxBusy: 100, Force: true, Log: &log})
	if err != nil {
		t.Fatalf("control plane: %v\n%s", err, log.String())
	}
	r.ControlPlane = cp
	md, err := WriteFiles(out, r)
	if err != nil {
		t.Fatal(err)
	}

	n := len(selectScenarios(o.Scenarios))
	if want := n * len(cands); len(r.Runs) != want {
		t.Errorf("%d runs, want %d (%d scenarios x %d candidates)", len(r.Runs), want, n, len(cands))
	}
	for _, run := range r.Runs {
		res := run.Result
		if res == nil || res.Requests == 0 || res.Errors != 0 {
			t.Errorf("%s on %s: result %+v", run.Scenario, run.Candidate, res)
			continue
		}
		if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 {
			t.Errorf("%s on %s: malformed latency %+v", run.Scenario, run.Candidate, res.Latency)
		}
		if run.Candidate != "direct" && (run.Proxies == nil || len(run.Proxies.RSSKiB) != 2 || run.Proxies.RSSKiB[0] <= 0) {
			t.Errorf("%s on %s: proxy figures %+v", run.Scenario, run.Candidate, run.Proxies)
		}
	}
	if want := 2 * (len(cands) - 1); len(r.Memory) != want {
		t.Errorf("%d memory figures, want %d (http and tcp chains of every proxy)", len(r.Memory), want)
	}
	if cp.Changes != 5 || cp.AllAckedSeconds <= 0 || cp.StormSeconds <= 0 || cp.ChangeMaxMs < cp.ChangeP50Ms {
		t.Errorf("control plane report %+v", cp)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(back.Summary) == 0 || !strings.Contains(md, "| http1-1k-1000rps-c16 | p99 latency |") ||
		!strings.Contains(md, "| http1-trace-100pct-1000rps-c16 | proxy RSS under load, client side |") || !strings.Contains(md, "reconnect storm") {
		t.Errorf("results.md lacks rows:\n%s", md)
	}
}

func TestStatMedianAndSpread(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Stat
	}{
		{[]float64{5, 1, 3}, Stat{Median: 3, Min: 1, Max: 5, N: 3}},
		{[]float64{4, 1, 3, 2}, Stat{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{nil, Stat{}},
	} {
		if got := stat(tc.in); got != tc.want {
			t.Errorf("stat(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 2s test @ http://127.0.0.1:18080/1k
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   777.04us    1.73ms  30.22ms   90.92%
    Req/Sec    68.99k    33.91k  103.43k    70.00%
  Latency Distribution
     50%  119.00us
     75%  300.00us
     90%    1.20ms
     99%    8.00ms
  137161 requests in 2.01s, 149.38MB read
Requests/sec:  68290.84
Transfer/sec:     74.38MB
`
	rps, mean, p50, err := parseWrk(out)
	if err != nil || rps != 68290.84 || mean != 777.04 || p50 != 119 {
		t.Fatalf("parseWrk = %v %v %v %v", rps, mean, p50, err)
	}
}

func TestForeignPctSubtractsOurOwnCPU(t *testing.T) {
	a := cpuTimes{total: 1000, idle: 800}
	// 2 cores x 1 s = 200 jiffies; 150 busy, 100 of them (1 s) ours.
	b := cpuTimes{total: 1200, idle: 840, irq: 10} // interrupt time is nobody's
	if got := foreignPct(a, b, time.Second); got != 25 {
		t.Errorf("foreignPct = %v, want 25", got)
	}
	if got := foreignPct(a, b, 3*time.Second); got != 0 {
		t.Errorf("foreignPct with more of ours than busy = %v, want 0", got)
	}
}
