package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/bench/load"
)

// The deployment-models scenario (issue 15, docs/deployment-models.md):
// one node, n meshed instances of the suite's backend (weft-load serve,
// GET /1k answers 1 KiB) run by the local adapter of a real `weft
// controller` as processes on loopback, split over a few applications
// (services), and served in each of the three models in turn:
//
//   - sidecar: a weft-proxy per instance (n processes);
//   - application: one weft-proxy per application (one per service);
//   - node: one weft-proxy for all n.
//
// One caller (service bench-caller, its own instance, always on a sidecar
// of its own, in every model alike) has an upstream per application. The
// load generator sends a fixed rate through the caller's outbound
// listeners, its connections spread over the applications in turn; the
// caller's sidecar balances each application's requests over its
// instances (round robin). The chain is load -> caller's sidecar -> (mTLS)
// -> the instance's proxy (its sidecar, its application's proxy, or the
// node proxy) -> the instance's app. Direct is the same load to the apps'
// own ports (isolation none), right before, in the same mesh.
//
// Measured per size and model: the proxy processes that serve the n
// instances (the caller's sidecar is not among them), their summed
// resident memory (VmRSS from /proc/PID/status: converged and warmed,
// then the peak of each under load, summed; and Pss from
// /proc/PID/smaps_rollup after the load, which shares the binary's
// pages between the sidecars), their CPU with no mesh traffic (during
// the direct run) and under the load, and the latency through the mesh
// against direct. Every process of the controller's tree counts as the
// suite's own in the busy check.

// ProxyModels are the three models, in the order they run.
var ProxyModels = []string{"sidecar", "application", "node"}

// ModelsOptions shape the scenario.
type ModelsOptions struct {
	// Bin holds weft, weft-proxy and weft-load (make build, make bench).
	Bin string
	Out string
	// Sizes are the instance counts on the node (1, 10, 50).
	Sizes []int
	// Apps is how many applications the instances are split over (at
	// most one per instance); the first ones take the remainder.
	Apps int
	// Rate is the load through the mesh, requests per second over all
	// instances; ConnsPerApp the load generator's connections to each
	// application's upstream listener.
	Rate        float64
	ConnsPerApp int
	// Reps: pairs of runs (direct, then through the mesh) per model;
	// the latencies are their medians.
	Reps     int
	Duration time.Duration
	Warmup   time.Duration
	// FirstAddress is the local adapter's first instance address; the
	// instances take the addresses after it.
	FirstAddress string
	MaxBusy      float64
	MaxForeign   float64
	WaitQuiet    time.Duration
	Retries      int
	Force        bool
	Log          io.Writer
}

func (o *ModelsOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// ModelRun is one size in one model.
type ModelRun struct {
	Instances int    `json:"instances"`
	Model     string `json:"model"`
	// Apps: the applications the instances were split over.
	Apps int `json:"applications"`
	// Proxies: the processes that served the instances.
	Proxies int `json:"proxy_processes"`
	// ConvergedSeconds: from starting the controller until every
	// instance was served, passing and ACKed.
	ConvergedSeconds float64 `json:"converged_seconds"`
	// IdleRSSKiB: the proxies' VmRSS summed, converged, after a few
	// calls to every instance, before the load.
	IdleRSSKiB int64 `json:"idle_rss_kib"`
	// LoadRSSKiB: each proxy's peak VmRSS under the load (sampled every
	// 250 ms), summed.
	LoadRSSKiB int64 `json:"load_rss_kib"`
	// PssKiB: the proxies' Pss (smaps_rollup) summed, right after the
	// load.
	PssKiB int64 `json:"pss_kib"`
	// IdleCPUPct: the proxies' CPU during the direct run (no mesh
	// traffic: timers, reports, the controller streams), percent of one
	// core; CPUPct under the load through the mesh; CallerCPUPct the
	// caller's sidecar under the load.
	IdleCPUPct   float64 `json:"idle_cpu_pct"`
	CPUPct       float64 `json:"cpu_pct"`
	CallerCPUPct float64 `json:"caller_cpu_pct"`
	// Direct and Mesh: every repetition's result, direct and through the
	// mesh; the P50 and P99 figures are their medians.
	Direct      []*load.Result `json:"direct"`
	Mesh        []*load.Result `json:"mesh"`
	DirectP50Us float64        `json:"direct_p50_us"`
	DirectP99Us float64        `json:"direct_p99_us"`
	MeshP50Us   float64        `json:"mesh_p50_us"`
	MeshP99Us   float64        `json:"mesh_p99_us"`
	// AddedP50Us and AddedP99Us: the mesh's latency minus direct's.
	AddedP50Us float64 `json:"added_p50_us"`
	AddedP99Us float64 `json:"added_p99_us"`
	Before     Load    `json:"machine_before"`
	ForeignPct float64 `json:"foreign_busy_pct"`
	Quiet      bool    `json:"quiet"`
	Attempt    int     `json:"attempt"`
}

// ModelsReport is what the scenario measured.
type ModelsReport struct {
	Rate        float64    `json:"rate"`
	ConnsPerApp int        `json:"conns_per_application"`
	Reps        int        `json:"reps"`
	Duration    string     `json:"duration"`
	Warmup      string     `json:"warmup"`
	Runs        []ModelRun `json:"runs"`
	Quiet       bool       `json:"quiet"`
	Seconds     float64    `json:"seconds"`
}

// ModelScenarioName names a size's runs for --scenarios: "models-10".
func ModelScenarioName(n int) string { return "models-" + strconv.Itoa(n) }

// appSplit is how many instances each application gets.
func appSplit(n, apps int) []int {
	apps = max(1, min(apps, n))
	out := make([]int, apps)
	for i := range out {
		out[i] = n / apps
		if i < n%apps {
			out[i]++
		}
	}
	return out
}

const modelsCaller = "bench-caller"

func modelsApp(i int) string { return "bench-app-" + strconv.Itoa(i) }

// modelsUpstreamPort is the caller's outbound port for application i.
func modelsUpstreamPort(i int) int { return 9001 + i }

// modelsPolicy: the caller may call every application, with an upstream
// each; default deny.
func modelsPolicy(apps int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mesh {\n  trust_domain   = %q\n  default_action = \"deny\"\n}\n\n", TrustDomain)
	fmt.Fprintf(&b, "service %q {\n  protocol = \"http\"\n  binding \"local\" { name = %q }\n", modelsCaller, modelsCaller)
	for i := range apps {
		fmt.Fprintf(&b, "  upstream %q { local_port = %d }\n", modelsApp(i), modelsUpstreamPort(i))
	}
	b.WriteString("}\n")
	for i := range apps {
		fmt.Fprintf(&b, "\nservice %q {\n  protocol = \"http\"\n  binding \"local\" { name = %q }\n}\n", modelsApp(i), modelsApp(i))
		fmt.Fprintf(&b, "intention %q %q { action = \"allow\" }\n", modelsCaller, modelsApp(i))
	}
	return b.String()
}

// modelsWorkloads: the applications in the model, the caller on its
// sidecar; every instance runs weft-load serve on its own address.
func modelsWorkloads(weftLoad, model string, split []int) string {
	var b strings.Builder
	svc := func(name, mode string, n int) {
		fmt.Fprintf(&b, "service %q {\n  command    = %q\n  args       = [\"serve\", \"--http\", \"${HOST}:${PORT}\"]\n  port       = 8080\n  instances  = %d\n  proxy_mode = %q\n}\n\n",
			name, weftLoad, n, mode)
	}
	svc(modelsCaller, "sidecar", 1)
	for i, n := range split {
		svc(modelsApp(i), model, n)
	}
	return b.String()
}

// Models runs the scenario: every size, each in the three models.
func Models(ctx context.Context, o ModelsOptions) (*ModelsReport, error) {
	for _, f := range []string{"weft", "weft-proxy", "weft-load"} {
		if _, err := os.Stat(filepath.Join(o.Bin, f)); err != nil {
			return nil, fmt.Errorf("the models scenario needs %s in %s: run make build first (%w)", f, o.Bin, err)
		}
	}
	if o.Rate <= 0 || o.ConnsPerApp <= 0 || o.Duration <= 0 {
		return nil, fmt.Errorf("the models scenario needs a rate, connections and a duration above 0 (got %v, %d, %v)", o.Rate, o.ConnsPerApp, o.Duration)
	}
	if o.FirstAddress == "" {
		o.FirstAddress = "127.0.160.2"
	}
	rep := &ModelsReport{Rate: o.Rate, ConnsPerApp: o.ConnsPerApp, Reps: max(1, o.Reps), Duration: o.Duration.String(), Warmup: o.Warmup.String(), Quiet: true}
	t0 := time.Now()
	for _, n := range o.Sizes {
		for _, model := range ProxyModels {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			run, err := modelRun(ctx, o, n, model)
			if err != nil {
				return nil, fmt.Errorf("%s, %s: %w", ModelScenarioName(n), model, err)
			}
			rep.Runs = append(rep.Runs, *run)
			rep.Quiet = rep.Quiet && run.Quiet
			o.logf("%-10s %-11s %2d proxies  RSS idle %7.1f MiB, load %7.1f MiB, Pss %7.1f MiB  CPU idle %5.1f%% load %5.1f%%  p50 direct %6.0fus mesh %6.0fus  p99 direct %6.0fus mesh %6.0fus%s",
				ModelScenarioName(n), model, run.Proxies, mib(run.IdleRSSKiB), mib(run.LoadRSSKiB), mib(run.PssKiB), run.IdleCPUPct, run.CPUPct,
				run.DirectP50Us, run.MeshP50Us, run.DirectP99Us, run.MeshP99Us,
				map[bool]string{true: "", false: "  (machine busy: not reportable)"}[run.Quiet])
		}
	}
	rep.Seconds = time.Since(t0).Seconds()
	return rep, nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// modelsMesh is one running controller with its local adapter's
// processes.
type modelsMesh struct {
	ctl  *replica
	work string
}

// startModelsMesh writes the policy and the workloads file of split in
// model into work (emptied first) and starts the controller on them.
func startModelsMesh(o ModelsOptions, work, model string, split []int) (*modelsMesh, error) {
	for _, pid := range processesIn(work) { // a run of ours cut short
		syscall.Kill(pid, syscall.SIGKILL)
	}
	os.RemoveAll(work)
	policyDir := filepath.Join(work, "policy")
	if err := os.MkdirAll(policyDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(policyDir, "mesh.hcl"), []byte(modelsPolicy(len(split))), 0o600); err != nil {
		return nil, err
	}
	workloads := filepath.Join(work, "workloads.hcl")
	if err := os.WriteFile(workloads, []byte(modelsWorkloads(filepath.Join(o.Bin, "weft-load"), model, split)), 0o600); err != nil {
		return nil, err
	}
	var ports [2]int
	for i := range ports {
		var err error
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	r := &replica{listen: fmt.Sprintf("127.0.0.1:%d", ports[0]), admin: fmt.Sprintf("127.0.0.1:%d", ports[1]), data: filepath.Join(work, "data")}
	// On the proxy core: the controller, its adapter and everything the
	// adapter starts (apps and proxies) inherit it.
	var err error
	r.p, err = startProc("controller", work, proxyCore, nil, filepath.Join(o.Bin, "weft"), "controller",
		"--data-dir", r.data, "--listen", r.listen, "--admin", r.admin, "--proxy-binary", filepath.Join(o.Bin, "weft-proxy"),
		"--policy-dir", policyDir, "--adapter", "local="+workloads,
		"--adapter-option", "local.first_address="+o.FirstAddress, "--adapter-option", "local.isolation=none",
		"--adapter-option", "local.node=bench-node")
	if err != nil {
		return nil, err
	}
	return &modelsMesh{ctl: r, work: work}, nil
}

// stop stops the controller like Ctrl-C, so that its local adapter stops
// every process it started, then kills, by pid, any process of this
// mesh that outlived it (one whose working directory or command line is
// in the mesh's work directory).
func (m *modelsMesh) stop() {
	p := m.ctl.p
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, pid := range processesIn(m.work) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesIn are the processes whose working directory is dir or whose
// command line names a path in it.
func processesIn(dir string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if cwd == dir || strings.Contains(string(cmd), dir+string(filepath.Separator)) {
			out = append(out, pid)
		}
	}
	return out
}

// descendants are pid and every process under it.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				children[pp] = append(children[pp], p)
			}
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuSnap is the CPU time of some processes at one moment.
type cpuSnap map[int]time.Duration

func cpuSnapshot(pids []int) cpuSnap {
	s := cpuSnap{}
	for _, pid := range pids {
		if _, t, err := procStats(pid); err == nil {
			s[pid] = t
		}
	}
	return s
}

// since is the CPU time they used since the snapshot (a process that
// exited meanwhile counts nothing).
func (s cpuSnap) since() time.Duration {
	var d time.Duration
	for pid, t0 := range s {
		if _, t, err := procStats(pid); err == nil && t >= t0 {
			d += t - t0
		}
	}
	return d
}

// procPss reads a process's proportional set size (KiB).
func procPss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("reading /proc/%d/smaps_rollup: no Pss line", pid)
}

// pidsCand is a set of processes measure samples as proxies.
type pidsCand struct {
	name string
	ps   []int
}

func (c *pidsCand) Name() string                                  { return c.name }
func (c *pidsCand) start(context.Context, string) (string, error) { return "", nil }
func (c *pidsCand) pids() []int                                   { return c.ps }
func (c *pidsCand) stop()                                         {}

// modelRun brings up a mesh of n instances in model, measures it and
// stops it.
func modelRun(ctx context.Context, o ModelsOptions, n int, model string) (*ModelRun, error) {
	split := appSplit(n, o.Apps)
	run := &ModelRun{Instances: n, Model: model, Apps: len(split)}
	work, err := filepath.Abs(filepath.Join(o.Out, "work-models", fmt.Sprintf("%s-%d", model, n)))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	m, err := startModelsMesh(o, work, model, split)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	r := m.ctl

	want := n + 1
	s, err := waitStatus(ctx, r, nil, 4*time.Minute, func(s *api.StatusReport) bool {
		if len(s.Instances) != want || len(s.Sidecars) != want {
			return false
		}
		for _, sc := range s.Sidecars {
			if sc.Version == 0 || sc.AckedVersion != sc.Version {
				return false
			}
		}
		for _, in := range s.Instances {
			if in.Health != "passing" || in.Labels["proxy_pid"] == "" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %d instances served, passing and ACKed: %w (see %s)", want, err, filepath.Join(work, "controller.log"))
	}
	run.ConvergedSeconds = time.Since(t0).Seconds()
	var proxies []int
	var callerPID int
	var callerAddr string
	var apps []string
	seen := map[int]bool{}
	for _, in := range s.Instances {
		pid, err := strconv.Atoi(in.Labels["proxy_pid"])
		if err != nil {
			return nil, fmt.Errorf("instance %s: proxy_pid %q: %w", in.ID, in.Labels["proxy_pid"], err)
		}
		if in.Service == modelsCaller {
			callerPID, callerAddr = pid, in.Address
			continue
		}
		apps = append(apps, fmt.Sprintf("%s:%d", in.Address, in.Ports["app"]))
		if !seen[pid] {
			seen[pid] = true
			proxies = append(proxies, pid)
		}
	}
	sort.Strings(apps)
	run.Proxies = len(proxies)
	wantProxies := map[string]int{"sidecar": n, "application": len(split), "node": 1}[model]
	if run.Proxies != wantProxies || seen[callerPID] {
		return nil, fmt.Errorf("%d proxy processes serve the %d instances (the caller's sidecar among them: %v), want %d in the %s model", run.Proxies, n, seen[callerPID], wantProxies, model)
	}
	o.logf("%s %s: %d instances in %d applications served by %d proxies, converged in %.1fs", ModelScenarioName(n), model, n, len(split), run.Proxies, run.ConvergedSeconds)

	var upstreams []string
	for i := range split {
		upstreams = append(upstreams, fmt.Sprintf("%s:%d", callerAddr, modelsUpstreamPort(i)))
	}
	if err := warmModel(r.p, apps, upstreams, split); err != nil {
		return nil, err
	}
	time.Sleep(time.Second) // let the warm-up's garbage settle, as runFamily does
	for _, pid := range proxies {
		rss, _, err := procStats(pid)
		if err != nil {
			return nil, err
		}
		run.IdleRSSKiB += rss
	}

	var own []int
	for _, pid := range descendants(r.p.pid()) {
		if !seen[pid] {
			own = append(own, pid)
		}
	}
	paths := modelPaths{proxies: proxies, caller: callerPID, own: own, apps: apps, upstreams: upstreams}
	for attempt := 1; ; attempt++ {
		before, quiet, why, err := waitQuiet(ctx, Options{MaxBusy: o.MaxBusy, WaitQuiet: o.WaitQuiet})
		if err != nil {
			return nil, err
		}
		run.Before, run.Attempt = before, attempt
		if err := measureModel(ctx, o, run, paths); err != nil {
			return nil, err
		}
		if quiet && run.ForeignPct > o.MaxForeign {
			quiet, why = false, fmt.Sprintf("other processes used %.0f%% of the CPUs during the run (limit %.0f%%)", run.ForeignPct, o.MaxForeign)
		}
		run.Quiet = quiet
		if quiet {
			break
		}
		if attempt <= o.Retries {
			o.logf("%s %s: %s; trying again", ModelScenarioName(n), model, why)
			continue
		}
		if !o.Force {
			return nil, fmt.Errorf("refusing to report: %s. Run again when the machine is quiet (or pass --force for numbers marked not reportable)", why)
		}
		break
	}
	return run, nil
}

// warmModel calls each app directly once, and each application through
// the mesh (upstreams[i]) twice per instance (split[i]): round robin
// reaches every instance. Each call is retried for up to 60 s while
// controller runs.
func warmModel(controller *proc, apps, upstreams []string, split []int) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	get := func(addr string) error {
		resp, err := hc.Get("http://" + addr + "/1k")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", addr, resp.Status)
		}
		return nil
	}
	warm := func(addr string, times int) error {
		deadline := time.Now().Add(60 * time.Second)
		for ok := 0; ok < times; {
			err := get(addr)
			if err == nil {
				ok++
				continue
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("calling %s: %w", addr, err)
			}
			if e := controller.exited(); e != nil {
				return e
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	}
	for _, a := range apps {
		if err := warm(a, 1); err != nil {
			return err
		}
	}
	for i, u := range upstreams {
		if err := warm(u, 2*split[i]); err != nil {
			return fmt.Errorf("through the mesh: %w", err)
		}
	}
	return nil
}

// modelPaths are what measureModel loads and samples.
type modelPaths struct {
	proxies   []int    // the processes serving the instances
	caller    int      // the caller's sidecar
	own       []int    // the rest of the controller's tree
	apps      []string // the instances' app addresses (direct)
	upstreams []string // the caller's outbound listeners (through the mesh)
}

// measureModel runs o.Reps pairs of runs, direct then through the mesh,
// and fills run's figures: latency medians over the pairs, CPU over all
// of them, each proxy's peak RSS over all of them, Pss after the last.
func measureModel(ctx context.Context, o ModelsOptions, run *ModelRun, p modelPaths) error {
	mo := Options{Bin: o.Bin, Duration: o.Duration, Warmup: o.Warmup, ownPIDs: p.own}
	cand := &pidsCand{name: run.Model, ps: p.proxies}
	scen := Scenario{Proto: "http1", Rate: o.Rate, Conns: o.ConnsPerApp * run.Apps}
	run.Direct, run.Mesh, run.ForeignPct = nil, nil, 0
	peak := make([]int64, len(p.proxies))
	var idleCPU, idleTime, cpu, callerCPU, loadTime float64
	for range max(1, o.Reps) {
		// Direct first: the proxies' CPU meanwhile is their idle cost.
		t := time.Now()
		direct, idle, fd, err := measure(ctx, mo, cand, scen, strings.Join(p.apps, ","))
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		idleCPU, idleTime = idleCPU+idle.CPUSeconds, idleTime+time.Since(t).Seconds()
		caller0 := cpuSnapshot([]int{p.caller})
		t = time.Now()
		mesh, use, fm, err := measure(ctx, mo, cand, scen, strings.Join(p.upstreams, ","))
		if err != nil {
			return fmt.Errorf("through the mesh: %w", err)
		}
		cpu, callerCPU, loadTime = cpu+use.CPUSeconds, callerCPU+caller0.since().Seconds(), loadTime+time.Since(t).Seconds()
		for i, v := range use.RSSKiB {
			peak[i] = max(peak[i], v)
		}
		if direct.Errors > 0 || mesh.Errors > 0 {
			return fmt.Errorf("errors: direct %d (%s), through the mesh %d (%s)", direct.Errors, direct.FirstError, mesh.Errors, mesh.FirstError)
		}
		run.Direct, run.Mesh = append(run.Direct, direct), append(run.Mesh, mesh)
		run.ForeignPct = max(run.ForeignPct, fd, fm)
	}
	run.IdleCPUPct, run.CPUPct, run.CallerCPUPct = 100*idleCPU/idleTime, 100*cpu/loadTime, 100*callerCPU/loadTime
	run.LoadRSSKiB, run.PssKiB = 0, 0
	for _, v := range peak {
		run.LoadRSSKiB += v
	}
	for _, pid := range p.proxies {
		pss, err := procPss(pid)
		if err != nil {
			return err
		}
		run.PssKiB += pss
	}
	med := func(rs []*load.Result, f func(load.Latency) float64) float64 {
		var vs []float64
		for _, r := range rs {
			vs = append(vs, f(r.Latency))
		}
		return stat(vs).Median
	}
	p50 := func(l load.Latency) float64 { return l.P50 }
	p99 := func(l load.Latency) float64 { return l.P99 }
	run.DirectP50Us, run.DirectP99Us = med(run.Direct, p50), med(run.Direct, p99)
	run.MeshP50Us, run.MeshP99Us = med(run.Mesh, p50), med(run.Mesh, p99)
	run.AddedP50Us, run.AddedP99Us = run.MeshP50Us-run.DirectP50Us, run.MeshP99Us-run.DirectP99Us
	return nil
}

// find is the run of n instances in model, nil when there is none.
func (c *ModelsReport) find(n int, model string) *ModelRun {
	for i := range c.Runs {
		if c.Runs[i].Instances == n && c.Runs[i].Model == model {
			return &c.Runs[i]
		}
	}
	return nil
}

// ModelTargets are issue 15's two targets for one size: the node
// proxy's memory against one sidecar's (the sidecars' sum over the
// instances), and its added latency against the sidecars'.
type ModelTargets struct {
	Instances int `json:"instances"`
	// OneSidecarMiB: the sidecar run's RSS under load divided by n.
	OneSidecarMiB float64 `json:"one_sidecar_mib"`
	NodeMiB       float64 `json:"node_mib"`
	// MemoryRatio is NodeMiB / OneSidecarMiB (target: under 2); the
	// same with the idle RSS in IdleMemoryRatio.
	MemoryRatio     float64 `json:"memory_ratio"`
	IdleMemoryRatio float64 `json:"idle_memory_ratio"`
	// LatencyRatioP50 and P99: the node model's added latency over the
	// sidecar model's (target: at most 1.1); 0 when either added latency
	// was not above 0 (direct slower than the mesh: noise, no ratio to
	// judge).
	LatencyRatioP50 float64 `json:"latency_ratio_p50"`
	LatencyRatioP99 float64 `json:"latency_ratio_p99"`
}

// MemoryMet says whether the memory target holds.
func (t ModelTargets) MemoryMet() bool { return t.MemoryRatio > 0 && t.MemoryRatio < 2 }

// LatencyVerdict is "met", "**not met**", or why it cannot be judged.
func (t ModelTargets) LatencyVerdict() string {
	if t.LatencyRatioP50 == 0 || t.LatencyRatioP99 == 0 {
		return "not judged (an added latency was not above 0: direct was slower than the mesh, noise)"
	}
	return metOrNot(t.LatencyRatioP50 <= 1.1 && t.LatencyRatioP99 <= 1.1)
}

// Targets are the targets of every size run in both models.
func (c *ModelsReport) Targets() []ModelTargets {
	var out []ModelTargets
	var sizes []int
	for _, r := range c.Runs {
		if len(sizes) == 0 || sizes[len(sizes)-1] != r.Instances {
			sizes = append(sizes, r.Instances)
		}
	}
	ratio := func(a, b float64) float64 {
		if a <= 0 || b <= 0 {
			return 0
		}
		return a / b
	}
	for _, n := range sizes {
		side, node := c.find(n, "sidecar"), c.find(n, "node")
		if side == nil || node == nil {
			continue
		}
		t := ModelTargets{Instances: n, OneSidecarMiB: mib(side.LoadRSSKiB) / float64(n), NodeMiB: mib(node.LoadRSSKiB)}
		t.MemoryRatio = ratio(t.NodeMiB, t.OneSidecarMiB)
		t.IdleMemoryRatio = ratio(mib(node.IdleRSSKiB), mib(side.IdleRSSKiB)/float64(n))
		t.LatencyRatioP50 = ratio(node.AddedP50Us, side.AddedP50Us)
		t.LatencyRatioP99 = ratio(node.AddedP99Us, side.AddedP99Us)
		out = append(out, t)
	}
	return out
}

// Markdown renders the scenario's table and the targets.
func (c *ModelsReport) Markdown() string {
	var b strings.Builder
	conns := "connections"
	if c.ConnsPerApp == 1 {
		conns = "connection"
	}
	fmt.Fprintf(&b, "Deployment models (issue 15), one node, the local adapter: n instances of the backend (weft-load serve) split over the applications of the column apps (an application proxy each in the application model); "+
		"one caller on its own sidecar sends %.0f RPS (%d %s per application, %s after %s warm-up) through its upstreams to them; direct: the same load to the apps' ports, right before; latencies: the median of %d such pair(s). "+
		"RSS: VmRSS summed over the proxy processes serving the n instances (not the caller's sidecar); Pss: from smaps_rollup, the binary's shared pages divided between the processes; CPU: percent of one core, idle during the direct run%s.\n\n",
		c.Rate, c.ConnsPerApp, conns, c.Duration, c.Warmup, max(1, c.Reps), map[bool]string{true: "", false: "; **machine busy: not reportable**"}[c.Quiet])
	b.WriteString("| instances | model | apps | proxy processes | RSS idle (MiB) | RSS under load (MiB) | Pss (MiB) | CPU idle (%) | CPU under load (%) | p50 direct / mesh (us) | p99 direct / mesh (us) | added p50 / p99 (us) | added vs sidecars' p50 / p99 |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range c.Runs {
		vs := "-"
		if side := c.find(r.Instances, "sidecar"); side != nil && r.Model != "sidecar" {
			x := func(a, b float64) string {
				if a <= 0 || b <= 0 {
					return "n/a"
				}
				return fmt.Sprintf("%.2fx", a/b)
			}
			vs = x(r.AddedP50Us, side.AddedP50Us) + " / " + x(r.AddedP99Us, side.AddedP99Us)
		}
		fmt.Fprintf(&b, "| %d | %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %s |\n",
			r.Instances, r.Model, r.Apps, r.Proxies, mib(r.IdleRSSKiB), mib(r.LoadRSSKiB), mib(r.PssKiB), r.IdleCPUPct, r.CPUPct,
			r.DirectP50Us, r.MeshP50Us, r.DirectP99Us, r.MeshP99Us, r.AddedP50Us, r.AddedP99Us, vs)
	}
	if ts := c.Targets(); len(ts) > 0 {
		busy := ""
		if !c.Quiet {
			busy = "; **machine busy: the verdicts are indicative only, and a p99 verdict is noise**"
		}
		fmt.Fprintf(&b, "\nIssue 15's targets (node proxy against sidecars, same size%s):\n\n", busy)
		for _, t := range ts {
			fmt.Fprintf(&b, "- n = %d: node proxy %.1f MiB under load = %.2fx one sidecar's %.1f MiB (idle: %.2fx): target under 2x %s; added latency p50 %s, p99 %s the sidecars': target within 1.1x %s.\n",
				t.Instances, t.NodeMiB, t.MemoryRatio, t.OneSidecarMiB, t.IdleMemoryRatio, metOrNot(t.MemoryMet()), fmtRatio(t.LatencyRatioP50), fmtRatio(t.LatencyRatioP99), t.LatencyVerdict())
		}
	}
	return b.String()
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", r)
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// SelectModelSizes are the sizes whose scenario name (ModelScenarioName)
// starts with one of prefixes; all of them when there is no prefix.
func SelectModelSizes(sizes []int, prefixes []string) []int {
	if len(prefixes) == 0 {
		return sizes
	}
	var out []int
	for _, n := range sizes {
		for _, p := range prefixes {
			if p != "" && strings.HasPrefix(ModelScenarioName(n), p) {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
