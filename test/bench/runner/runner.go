package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/test/bench/load"
)

// Options shape a suite run.
type Options struct {
	Bin      string // directory holding weft-proxy and weft-load
	Out      string // where results.json, results.md and logs go
	Reps     int
	Duration time.Duration
	Warmup   time.Duration
	// IdleConns is how many idle keep-alive connections the memory
	// figure holds open.
	IdleConns int
	// BulkEndpoints is the size of the extra upstream in Weft's client
	// config (1,000 by default).
	BulkEndpoints int
	// MaxBusy is the CPU use (percent of all cores) above which the
	// machine counts as busy before a run.
	MaxBusy float64
	// MaxForeign is the CPU use by processes other than the suite's own
	// (percent of all cores) during a run above which the run is noise.
	MaxForeign float64
	// WaitQuiet is how long to wait for a quiet machine before each run;
	// Retries is how many times a run disturbed by other work is redone.
	WaitQuiet time.Duration
	Retries   int
	// Force runs on a busy machine anyway; the results are then marked
	// not reportable.
	Force bool
	// Only restricts the candidates (direct, haproxy, weft); empty: all.
	Only []string
	// Scenarios restricts the scenarios by name prefix; empty: all.
	Scenarios []string
	// WrkCheck runs weft-load and wrk side by side against the backend.
	WrkCheck bool
	Log      io.Writer

	backendPID int
	// ownPIDs are more of the suite's processes (the models scenario's
	// apps, controller and caller sidecar): their CPU during a run is
	// the suite's, not other work's.
	ownPIDs []int
}

// Scenario is one measured load.
type Scenario struct {
	Name   string  `json:"name"`
	Family string  `json:"family"` // http, grpc, tcp: what the chain carries
	Proto  string  `json:"proto"`  // the load generator's protocol
	Rate   float64 `json:"rate"`   // 0: closed loop, maximum throughput
	Conns  int     `json:"conns"`
	// Resources: measure the proxies' RSS and CPU during this one.
	Resources bool   `json:"resources,omitempty"`
	What      string `json:"what"`
	// Tracing is Weft's sampling during this one (tracing.go): "off",
	// or a fraction such as "0.01"; "": off.
	Tracing string `json:"tracing,omitempty"`
}

// Scenarios is the suite.
var Scenarios = []Scenario{
	{Name: "http1-1k-1000rps-c2", Family: "http", Proto: "http1", Rate: 1000, Conns: 2, What: "HTTP/1.1 keep-alive, 1 KiB responses, 1000 RPS, 2 connections"},
	{Name: "http1-1k-1000rps-c16", Family: "http", Proto: "http1", Rate: 1000, Conns: 16, Resources: true, What: "HTTP/1.1 keep-alive, 1 KiB responses, 1000 RPS, 16 connections"},
	{Name: "http1-1k-1000rps-c64", Family: "http", Proto: "http1", Rate: 1000, Conns: 64, What: "HTTP/1.1 keep-alive, 1 KiB responses, 1000 RPS, 64 connections"},
	{Name: "http1-1k-max-c16", Family: "http", Proto: "http1", Rate: 0, Conns: 16, What: "HTTP/1.1 1 KiB, closed loop: maximum throughput at 16 connections"},
	{Name: "gateway-https1-1k-1000rps-c16", Family: "gateway", Proto: "https1", Rate: 1000, Conns: 16, Resources: true, What: "ingress gateway: HTTP/1.1 over TLS from outside, mTLS inside, 1 KiB responses, 1000 RPS, 16 connections (direct: plain HTTP/1.1 to the backend)"},
	{Name: "grpc-unary-1000rps-c16", Family: "grpc", Proto: "grpc", Rate: 1000, Conns: 16, What: "gRPC unary (health Check), 1000 RPS, 16 connections"},
	{Name: "tcp-echo-64b-1000rps-c16", Family: "tcp", Proto: "tcp", Rate: 1000, Conns: 16, What: "TCP echo, 64-byte messages, 1000 RPS, 16 connections"},
	{Name: "http1-trace-off-1000rps-c16", Family: "http", Proto: "http1", Rate: 1000, Conns: 16, Resources: true, Tracing: "off", What: "the c16 load with Weft's tracing off: the reference of the two below"},
	{Name: "http1-trace-1pct-1000rps-c16", Family: "http", Proto: "http1", Rate: 1000, Conns: 16, Resources: true, Tracing: "0.01", What: "the c16 load with Weft tracing 1% of new traces (OTLP/HTTP to a sink on loopback)"},
	{Name: "http1-trace-100pct-1000rps-c16", Family: "http", Proto: "http1", Rate: 1000, Conns: 16, Resources: true, Tracing: "1", What: "the c16 load with Weft tracing every request (two spans per request, both proxies)"},
	{Name: "tcp-newconn-max-c16", Family: "tcp", Proto: "tcp-new", Rate: 0, Conns: 16, What: "a new connection per 64-byte echo, closed loop: the mTLS handshake rate between the proxies"},
}

// ProxyUse is what the proxies of a candidate used.
type ProxyUse struct {
	// RSSKiB per proxy (server side first): the peak sampled every
	// 250ms during the run.
	RSSKiB []int64 `json:"rss_kib"`
	// CPUSeconds of all the candidate's proxies over the run.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPer1000RPS is CPU percent of one core per 1000 requests/second.
	CPUPer1000RPS float64 `json:"cpu_pct_per_1000rps,omitempty"`
}

// Run is one scenario on one candidate, once.
type Run struct {
	Scenario  string `json:"scenario"`
	Candidate string `json:"candidate"`
	Rep       int    `json:"rep"`
	Before    Load   `json:"machine_before"`
	// ForeignPct is CPU use during the run by processes other than the
	// suite's (proxies, load generator, backend), percent of all cores.
	ForeignPct float64      `json:"foreign_busy_pct"`
	Attempt    int          `json:"attempt"`
	Quiet      bool         `json:"quiet"`
	Result     *load.Result `json:"result"`
	Proxies    *ProxyUse    `json:"proxies,omitempty"`
}

// Memory is a candidate's memory figures for one repetition.
type Memory struct {
	Candidate string `json:"candidate"`
	// Family is what the chain carried: http (idle RSS and HTTP/1.1
	// keep-alive connections) or tcp (idle TCP connections).
	Family string `json:"family"`
	Rep    int    `json:"rep"`
	// IdleRSSKiB per proxy right after start with its config applied
	// (Weft's client side holds the 1,000-endpoint upstream).
	IdleRSSKiB []int64 `json:"idle_rss_kib"`
	// PerIdleConnBytes is the proxies' RSS growth per idle keep-alive
	// connection held through the chain; PerIdleConnEach splits it per
	// proxy (server side first).
	PerIdleConnBytes float64   `json:"per_idle_conn_bytes"`
	PerIdleConnEach  []float64 `json:"per_idle_conn_bytes_each"`
	IdleConns        int       `json:"idle_conns"`
}

// Report is everything a suite run produced.
type Report struct {
	Started    time.Time   `json:"started"`
	Command    string      `json:"command"`
	Machine    Machine     `json:"machine"`
	Options    OptionsJSON `json:"options"`
	Reportable bool        `json:"reportable"`
	// NotReportable says why, when the machine was busy.
	NotReportable []string   `json:"not_reportable,omitempty"`
	Scenarios     []Scenario `json:"scenarios"`
	Runs          []Run      `json:"runs"`
	Memory        []Memory   `json:"memory"`
	ControlPlane  *CPReport  `json:"control_plane,omitempty"`
	// ControlPlaneReplicas: the replica scenario (--cp-replicas).
	ControlPlaneReplicas *CPReplicasReport `json:"control_plane_replicas,omitempty"`
	// Models: the deployment-models scenario (models.go).
	Models   *ModelsReport `json:"models,omitempty"`
	WrkCheck *WrkCheck     `json:"wrk_check,omitempty"`
	Summary  []SummaryRow  `json:"summary"`
}

// OptionsJSON is the part of Options a reader needs.
type OptionsJSON struct {
	Reps          int     `json:"reps"`
	Duration      string  `json:"duration"`
	Warmup        string  `json:"warmup"`
	IdleConns     int     `json:"idle_conns"`
	BulkEndpoints int     `json:"bulk_endpoints"`
	MaxBusy       float64 `json:"max_busy_pct"`
	MaxForeign    float64 `json:"max_foreign_pct"`
	Force         bool    `json:"force"`
	ProxyCore     string  `json:"proxy_core"`
	LoadCore      string  `json:"load_core"`
}

func (o *Options) logf(format string, args ...any) {
	fmt.Fprintf(o.Log, format+"\n", args...)
}

// DataPlane runs the data-plane suite and fills r.
func DataPlane(ctx context.Context, o Options, r *Report) error {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	work := filepath.Join(o.Out, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	ctl, err := startController(filepath.Join(work, "ca"))
	if err != nil {
		return fmt.Errorf("starting the controller: %w", err)
	}
	defer ctl.stop()
	e := &env{bin: o.Bin, work: work, ctl: ctl, bulk: o.BulkEndpoints, backend: map[string]string{}}
	if e.sink, err = startTraceSink(); err != nil {
		return err
	}
	defer e.sink.stop()
	if e.client, err = issueLeaf(ctl.CA, filepath.Join(work, "certs-client"), "bench-client"); err != nil {
		return err
	}
	if e.server, err = issueLeaf(ctl.CA, filepath.Join(work, "certs-server"), "bench-server"); err != nil {
		return err
	}
	// The backend, on the load generator's core.
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	for i, f := range []string{"http", "grpc", "tcp"} {
		e.backend[f] = fmt.Sprintf("127.0.0.1:%d", ports[i])
	}
	e.backend["gateway"] = e.backend["http"]
	backend, err := startProc("backend", work, loadCore, []string{"GOMAXPROCS=1"}, filepath.Join(o.Bin, "weft-load"), "serve",
		"--http", e.backend["http"], "--grpc", e.backend["grpc"], "--tcp", e.backend["tcp"])
	if err != nil {
		return err
	}
	defer backend.stop()
	o.backendPID = backend.pid()
	for _, a := range []string{e.backend["http"], e.backend["grpc"], e.backend["tcp"]} {
		if err := waitTCP(a, []*proc{backend}, 10*time.Second); err != nil {
			return err
		}
	}

	if o.WrkCheck {
		if r.WrkCheck, err = wrkCheck(ctx, o, e.backend["http"]); err != nil {
			return err
		}
	}

	cands := []candidate{&direct{e}, &haproxyCand{e: e}, &weftCand{e: e}}
	if len(o.Only) > 0 {
		var keep []candidate
		for _, c := range cands {
			for _, n := range o.Only {
				if c.Name() == n {
					keep = append(keep, c)
				}
			}
		}
		cands = keep
	}
	scen := selectScenarios(o.Scenarios)
	r.Scenarios = scen
	for _, family := range []string{"http", "gateway", "grpc", "tcp"} {
		var fs []Scenario
		for _, s := range scen {
			if s.Family == family {
				fs = append(fs, s)
			}
		}
		if len(fs) == 0 {
			continue
		}
		for rep := 1; rep <= o.Reps; rep++ {
			// Alternate: each repetition starts with the next candidate.
			for i := range cands {
				c := cands[(i+rep-1)%len(cands)]
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := runFamily(ctx, o, r, c, family, fs, rep); err != nil {
					c.stop()
					return fmt.Errorf("%s, %s scenarios, repetition %d: %w", c.Name(), family, rep, err)
				}
				c.stop()
			}
		}
	}
	return nil
}

func selectScenarios(prefixes []string) []Scenario {
	if len(prefixes) == 0 {
		return Scenarios
	}
	var out []Scenario
	for _, s := range Scenarios {
		for _, p := range prefixes {
			if strings.HasPrefix(s.Name, p) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func runFamily(ctx context.Context, o Options, r *Report, c candidate, family string, fs []Scenario, rep int) (err error) {
	entry, err := c.start(ctx, family)
	if err != nil {
		// The ports are picked free and bound a moment later by the
		// proxies: on a shared machine someone may take one meanwhile.
		o.logf("%s: starting the %s chain: %v; trying once more", c.Name(), family, err)
		c.stop()
		if entry, err = c.start(ctx, family); err != nil {
			return err
		}
	}
	o.logf("%s: %s chain up, entry %s", c.Name(), family, entry)
	if (family == "http" || family == "tcp") && len(c.pids()) > 0 {
		time.Sleep(time.Second) // let start-up garbage settle
		m := Memory{Candidate: c.Name(), Family: family, Rep: rep, IdleConns: o.IdleConns}
		for _, pid := range c.pids() {
			rss, _, err := procStats(pid)
			if err != nil {
				return err
			}
			m.IdleRSSKiB = append(m.IdleRSSKiB, rss)
		}
		r.Memory = append(r.Memory, m)
		o.logf("%s: %s chain idle RSS %v KiB", c.Name(), family, m.IdleRSSKiB)
		// The idle connections are measured after the scenarios: the
		// memory they take stays with the process a while after they
		// close, and would count in the RSS under load.
		defer func() {
			if err != nil || o.IdleConns <= 0 {
				return
			}
			m := &r.Memory[len(r.Memory)-1]
			if m.PerIdleConnEach, err = perIdleConn(ctx, o, c, entry, family); err != nil {
				return
			}
			for _, v := range m.PerIdleConnEach {
				m.PerIdleConnBytes += v
			}
			o.logf("%s: %s chain %.0f bytes per idle connection", c.Name(), family, m.PerIdleConnBytes)
		}()
	}
	for _, s := range fs {
		if w, ok := c.(*weftCand); ok {
			if err := w.setTracing(s.Tracing); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		var run Run
		for attempt := 1; ; attempt++ {
			before, quiet, why, err := waitQuiet(ctx, o)
			if err != nil {
				return err
			}
			run = Run{Scenario: s.Name, Candidate: c.Name(), Rep: rep, Before: before, Attempt: attempt}
			var res *load.Result
			var use *ProxyUse
			if quiet {
				res, use, run.ForeignPct, err = measure(ctx, o, c, s, entry)
				if err != nil {
					return fmt.Errorf("%s: %w", s.Name, err)
				}
				run.Result, run.Proxies = res, use
				if run.ForeignPct > o.MaxForeign {
					quiet, why = false, fmt.Sprintf("other processes used %.0f%% of the CPUs during the run (limit %.0f%%)", run.ForeignPct, o.MaxForeign)
				}
			}
			if quiet {
				run.Quiet = true
				break
			}
			if attempt <= o.Retries {
				o.logf("%s on %s: %s; trying again", s.Name, c.Name(), why)
				continue
			}
			if !o.Force {
				return fmt.Errorf("refusing to report %s on %s: %s. Run again when the machine is quiet (or pass --force for a smoke run whose numbers are marked not reportable)", s.Name, c.Name(), why)
			}
			r.NotReportable = append(r.NotReportable, fmt.Sprintf("%s/%s rep %d: %s", s.Name, c.Name(), rep, why))
			if run.Result == nil {
				if run.Result, run.Proxies, run.ForeignPct, err = measure(ctx, o, c, s, entry); err != nil {
					return fmt.Errorf("%s: %w", s.Name, err)
				}
			}
			break
		}
		res := run.Result
		r.Runs = append(r.Runs, run)
		o.logf("%-26s %-8s rep %d: %8.0f rps  p50 %8.1fus  p99 %8.1fus  errors %d%s", s.Name, c.Name(), rep, res.RPS, res.Latency.P50, res.Latency.P99, res.Errors, map[bool]string{true: "", false: "  (machine busy: not reportable)"}[run.Quiet])
	}
	return nil
}

// measure runs the load generator for s against entry, pinned to the load
// core, sampling the proxies' memory meanwhile.
func measure(ctx context.Context, o Options, c candidate, s Scenario, entry string) (*load.Result, *ProxyUse, float64, error) {
	proto := s.Proto
	if _, plain := c.(*direct); plain && proto == "https1" {
		proto = "http1" // the backend speaks plain HTTP: direct is the baseline without TLS
	}
	args := []string{"-c", loadCore, filepath.Join(o.Bin, "weft-load"), "run", "--proto", proto, "--target", entry,
		"--rate", strconv.FormatFloat(s.Rate, 'f', -1, 64), "--conns", strconv.Itoa(s.Conns),
		"--duration", o.Duration.String(), "--warmup", o.Warmup.String()}
	cmd := exec.CommandContext(ctx, "taskset", args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pids := c.pids()
	var use *ProxyUse
	var cpu0 []time.Duration
	if len(pids) > 0 {
		use = &ProxyUse{RSSKiB: make([]int64, len(pids))}
		for _, pid := range pids {
			_, t, err := procStats(pid)
			if err != nil {
				return nil, nil, 0, err
			}
			cpu0 = append(cpu0, t)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if use != nil {
		wg.Go(func() {
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				for i, pid := range pids {
					if rss, _, err := procStats(pid); err == nil {
						use.RSSKiB[i] = max(use.RSSKiB[i], rss)
					}
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
	}
	var backend0 time.Duration
	if o.backendPID != 0 {
		_, backend0, _ = procStats(o.backendPID)
	}
	own0 := cpuSnapshot(o.ownPIDs)
	cpuA, err := readCPUTimes()
	if err != nil {
		return nil, nil, 0, err
	}
	start := time.Now()
	out, err := cmd.Output()
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("weft-load: %v: %s", err, stderr.String())
	}
	cpuB, err := readCPUTimes()
	if err != nil {
		return nil, nil, 0, err
	}
	ours := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if o.backendPID != 0 {
		_, b1, _ := procStats(o.backendPID)
		ours += b1 - backend0
	}
	ours += own0.since()
	var res load.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, nil, 0, fmt.Errorf("reading weft-load's result: %w", err)
	}
	if use != nil {
		for i, pid := range pids {
			_, t, err := procStats(pid)
			if err != nil {
				return nil, nil, 0, err
			}
			use.CPUSeconds += (t - cpu0[i]).Seconds()
		}
		ours += time.Duration(use.CPUSeconds * float64(time.Second))
		if res.RPS > 0 {
			// CPU over the whole load (warm-up included) as percent of
			// a core, per 1000 RPS.
			use.CPUPer1000RPS = 100 * use.CPUSeconds / elapsed.Seconds() / (res.RPS / 1000)
		}
	}
	return &res, use, foreignPct(cpuA, cpuB, ours), nil
}

// foreignPct is the CPU time others used between a and b, as percent of
// all cores, given what the suite's own processes used. Interrupt time is
// left out (loopback traffic is processed there, charged to nobody), and
// the system-wide counters are sampled at each clock tick while the
// per-process ones are exact, so a few percent is noise either way.
func foreignPct(a, b cpuTimes, ours time.Duration) float64 {
	total := float64(b.total - a.total) // jiffies over all cores
	if total <= 0 {
		return 0
	}
	busy := float64((b.total - b.idle - b.irq) - (a.total - a.idle - a.irq))
	other := busy - ours.Seconds()*userHZ
	return max(0, 100*other/total)
}

// waitQuiet samples the machine until it is quiet or o.WaitQuiet passes.
func waitQuiet(ctx context.Context, o Options) (Load, bool, string, error) {
	deadline := time.Now().Add(o.WaitQuiet)
	for {
		l, err := sampleLoad(time.Second)
		if err != nil {
			return l, false, "", err
		}
		quiet, why := l.quiet(o.MaxBusy)
		if quiet || !time.Now().Before(deadline) || ctx.Err() != nil {
			return l, quiet, why, ctx.Err()
		}
	}
}

// perIdleConn holds o.IdleConns keep-alive connections through the chain
// and returns each proxy's RSS growth per connection. RSS also moves with
// the garbage collector's timing: the figure is a few KiB either way.
func perIdleConn(ctx context.Context, o Options, c candidate, entry, family string) ([]float64, error) {
	proto := "http1"
	if family == "tcp" {
		proto = "tcp"
	}
	rss := func() ([]int64, error) {
		var out []int64
		for _, pid := range c.pids() {
			v, _, err := procStats(pid)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	before, err := rss()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "taskset", "-c", loadCore, filepath.Join(o.Bin, "weft-load"), "idle", "--proto", proto, "--target", entry, "--conns", strconv.Itoa(o.IdleConns))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("holding idle connections: %v %s", err, stderr.String())
	}
	time.Sleep(2 * time.Second)
	after, err := rss()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(after))
	for i := range after {
		out[i] = float64(after[i]-before[i]) * 1024 / float64(o.IdleConns)
	}
	return out, nil
}

// WriteFiles writes results.json and results.md into o.Out.
func WriteFiles(out string, r *Report) (md string, err error) {
	r.Summary = summarize(r)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), b, 0o644); err != nil {
		return "", err
	}
	md = Markdown(r)
	return md, os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644)
}

// Stat is a median with its spread over repetitions.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func stat(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// SummaryRow is one figure for every candidate.
type SummaryRow struct {
	Scenario string          `json:"scenario"`
	Metric   string          `json:"metric"`
	Unit     string          `json:"unit"`
	Values   map[string]Stat `json:"values"`
	// For latency: Weft's and HAProxy's added latency over direct
	// (medians), and their ratio. For throughput: Weft / HAProxy.
	WeftAdded    *float64 `json:"weft_added,omitempty"`
	HAProxyAdded *float64 `json:"haproxy_added,omitempty"`
	Ratio        *float64 `json:"ratio,omitempty"`
}

var candidateOrder = []string{"direct", "haproxy", "weft"}

func summarize(r *Report) []SummaryRow {
	var rows []SummaryRow
	for _, s := range r.Scenarios {
		per := func(f func(Run) (float64, bool)) map[string]Stat {
			m := map[string][]float64{}
			for _, run := range r.Runs {
				if run.Scenario != s.Name {
					continue
				}
				if v, ok := f(run); ok {
					m[run.Candidate] = append(m[run.Candidate], v)
				}
			}
			out := map[string]Stat{}
			for k, v := range m {
				out[k] = stat(v)
			}
			return out
		}
		if s.Rate == 0 {
			unit, metric := "req/s", "throughput"
			if s.Proto == "tcp-new" {
				unit, metric = "conn/s", "new connections (mTLS handshakes through proxies)"
			}
			row := SummaryRow{Scenario: s.Name, Metric: metric, Unit: unit, Values: per(func(r Run) (float64, bool) { return r.Result.RPS, true })}
			if w, h := row.Values["weft"], row.Values["haproxy"]; w.N > 0 && h.N > 0 && h.Median > 0 {
				v := w.Median / h.Median
				row.Ratio = &v
			}
			rows = append(rows, row)
		} else {
			for _, q := range []struct {
				name string
				f    func(load.Latency) float64
			}{{"p50", func(l load.Latency) float64 { return l.P50 }}, {"p99", func(l load.Latency) float64 { return l.P99 }}} {
				row := SummaryRow{Scenario: s.Name, Metric: q.name + " latency", Unit: "us", Values: per(func(r Run) (float64, bool) { return q.f(r.Result.Latency), true })}
				d, w, h := row.Values["direct"], row.Values["weft"], row.Values["haproxy"]
				if d.N > 0 && w.N > 0 {
					v := w.Median - d.Median
					row.WeftAdded = &v
				}
				if d.N > 0 && h.N > 0 {
					v := h.Median - d.Median
					row.HAProxyAdded = &v
				}
				if row.WeftAdded != nil && row.HAProxyAdded != nil && *row.HAProxyAdded > 0 {
					v := *row.WeftAdded / *row.HAProxyAdded
					row.Ratio = &v
				}
				rows = append(rows, row)
			}
		}
		if s.Resources {
			rows = append(rows,
				SummaryRow{Scenario: s.Name, Metric: "proxy RSS under load, client side", Unit: "MiB", Values: per(func(r Run) (float64, bool) {
					if r.Proxies == nil || len(r.Proxies.RSSKiB) < 2 {
						return 0, false
					}
					return float64(r.Proxies.RSSKiB[1]) / 1024, true // client side started second
				})},
				SummaryRow{Scenario: s.Name, Metric: "proxies' CPU per 1000 RPS (both)", Unit: "% core", Values: per(func(r Run) (float64, bool) {
					if r.Proxies == nil {
						return 0, false
					}
					return r.Proxies.CPUPer1000RPS, true
				})})
		}
	}
	mem := func(family, metric, unit string, f func(Memory) float64) SummaryRow {
		m := map[string][]float64{}
		for _, x := range r.Memory {
			if x.Family == family {
				m[x.Candidate] = append(m[x.Candidate], f(x))
			}
		}
		row := SummaryRow{Scenario: "idle", Metric: metric, Unit: unit, Values: map[string]Stat{}}
		for k, v := range m {
			row.Values[k] = stat(v)
		}
		return row
	}
	if len(r.Memory) > 0 {
		rows = append(rows,
			mem("http", "idle RSS, client side (Weft: 1,000-endpoint upstream in its config)", "MiB", func(m Memory) float64 { return float64(m.IdleRSSKiB[len(m.IdleRSSKiB)-1]) / 1024 }),
			mem("http", "idle RSS, server side", "MiB", func(m Memory) float64 { return float64(m.IdleRSSKiB[0]) / 1024 }),
			mem("http", "memory per idle keep-alive connection (both proxies)", "KiB", func(m Memory) float64 { return m.PerIdleConnBytes / 1024 }),
			mem("http", "memory per idle keep-alive connection, client side", "KiB", func(m Memory) float64 {
				if len(m.PerIdleConnEach) == 0 {
					return 0
				}
				return m.PerIdleConnEach[len(m.PerIdleConnEach)-1] / 1024
			}),
			mem("tcp", "memory per idle TCP connection (both proxies)", "KiB", func(m Memory) float64 { return m.PerIdleConnBytes / 1024 }))
	}
	return rows
}

func fmtStat(s Stat) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000 || v <= -1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10 || v <= -10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func fmtPtr(p *float64, suffix string) string {
	if p == nil {
		return "-"
	}
	return fmtNum(*p) + suffix
}

// Markdown renders the summary table.
func Markdown(r *Report) string {
	var b strings.Builder
	if !r.Reportable {
		fmt.Fprintf(&b, "**NOT REPORTABLE: the machine was busy or the run was cut short; these numbers are noise from a smoke run.**\n\n")
		for i, why := range r.NotReportable {
			if i == 5 {
				fmt.Fprintf(&b, "- ... and %d more\n", len(r.NotReportable)-5)
				break
			}
			fmt.Fprintf(&b, "- %s\n", why)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Machine: %s, %d cores, Linux %s, %s, %s. Command: `%s`. %d repetition(s) of %s (after %s warm-up); median (min–max).\n\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.Kernel, r.Machine.Go, r.Machine.HAProxy, r.Command, r.Options.Reps, r.Options.Duration, r.Options.Warmup)
	if len(r.Summary) > 0 {
		b.WriteString("| Scenario | Metric | Unit | direct | HAProxy | Weft | Weft added | HAProxy added | Weft/HAProxy |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, row := range r.Summary {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Scenario, row.Metric, row.Unit,
				fmtStat(row.Values["direct"]), fmtStat(row.Values["haproxy"]), fmtStat(row.Values["weft"]),
				fmtPtr(row.WeftAdded, ""), fmtPtr(row.HAProxyAdded, ""), fmtPtr(row.Ratio, "x"))
		}
	}
	if w := r.WrkCheck; w != nil {
		fmt.Fprintf(&b, "\nLoad generator cross-check against wrk (%s, %d connections, %.0f s%s): weft-load %.0f req/s, mean %.0f us, p50 %.0f us; wrk %.0f req/s, mean %.0f us, p50 %.0f us.\n",
			w.BackendAddrNote, w.Conns, w.Seconds, map[bool]string{true: "", false: "; machine busy"}[w.Quiet], w.WeftLoadRPS, w.WeftLoadMeanUs, w.WeftLoadP50Us, w.WrkRPS, w.WrkMeanUs, w.WrkP50Us)
	}
	if m := r.Models; m != nil {
		b.WriteString("\n" + m.Markdown())
	}
	if cp := r.ControlPlane; cp != nil {
		b.WriteString("\n" + cp.Markdown())
	}
	if cp := r.ControlPlaneReplicas; cp != nil {
		b.WriteString("\n" + cp.Markdown())
	}
	return b.String()
}

// ErrBusy marks a refusal to measure on a busy machine.
var ErrBusy = errors.New("machine busy")

// wrkCheck cross-checks the load generator against wrk: both closed loop,
// 16 connections, one thread, on the load core, against the backend.
func wrkCheck(ctx context.Context, o Options, target string) (*WrkCheck, error) {
	_, quiet, why, err := waitQuiet(ctx, o)
	if err != nil {
		return nil, err
	}
	if !quiet && !o.Force {
		return nil, fmt.Errorf("refusing the wrk cross-check: %s", why)
	}
	d := max(o.Duration, time.Second).Round(time.Second)
	w := &WrkCheck{Conns: 16, Seconds: d.Seconds(), Quiet: quiet, BackendAddrNote: "both closed loop (wrk has no fixed rate), HTTP/1.1 keep-alive, GET /1k on the backend, one thread pinned to the load core"}
	res, _, _, err := measure(ctx, Options{Bin: o.Bin, Duration: d, Warmup: time.Second}, &direct{}, Scenario{Proto: "http1", Rate: 0, Conns: 16}, target)
	if err != nil {
		return nil, err
	}
	w.WeftLoadRPS, w.WeftLoadMeanUs, w.WeftLoadP50Us = res.RPS, res.Latency.Mean, res.Latency.P50
	out, err := runWrk(ctx, target, 16, d)
	if err != nil {
		return nil, err
	}
	if w.WrkRPS, w.WrkMeanUs, w.WrkP50Us, err = parseWrk(out); err != nil {
		return nil, err
	}
	o.logf("wrk cross-check: weft-load %.0f rps mean %.0fus p50 %.0fus; wrk %.0f rps mean %.0fus p50 %.0fus", w.WeftLoadRPS, w.WeftLoadMeanUs, w.WeftLoadP50Us, w.WrkRPS, w.WrkMeanUs, w.WrkP50Us)
	return w, nil
}
