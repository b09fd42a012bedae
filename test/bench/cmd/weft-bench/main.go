// Command weft-bench runs the benchmark suite (test/bench/runner): the
// data plane (direct, HAProxy, Weft through the same two-hop mTLS chain),
// the deployment models (models-1, models-10, models-50: sidecars,
// application proxies and one node proxy on the local adapter; skip them
// with --skip-models) and the control plane (one controller, many simulated sidecars; with
// --cp-replicas 3, three `weft controller` replicas on Raft instead). It
// prints a Markdown table and writes results.json and results.md.
//
//	weft-bench run [--quick] [--force] [--bin DIR] [--out DIR] [--reps N] ...
//	weft-bench cp-controller ...   (started by run; not for people)
//
// It refuses to measure on a busy machine (CPU use sampled from /proc/stat
// before every run); --force runs anyway and marks the numbers not
// reportable.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/test/bench/runner"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: weft-bench run [flags]; weft-bench run -h for flags")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "cp-controller":
		err = cpController(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; want run", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o runner.Options
	quick := fs.Bool("quick", false, "smoke run: 1 repetition of 2s, 200 idle connections, a smaller control plane")
	fs.StringVar(&o.Bin, "bin", "bin", "directory holding weft-proxy, weft-load and weft-bench")
	fs.StringVar(&o.Out, "out", ".bench", "directory for results.json, results.md and logs")
	fs.IntVar(&o.Reps, "reps", 5, "repetitions of every scenario on every candidate (alternating)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time of each run")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "warm-up before each run, not recorded")
	fs.IntVar(&o.IdleConns, "idle-conns", 1000, "idle keep-alive connections for the memory-per-connection figure")
	fs.IntVar(&o.BulkEndpoints, "endpoints", 1000, "endpoints of the extra upstream in the Weft client sidecar's config")
	fs.Float64Var(&o.MaxBusy, "max-busy", 10, "CPU use (% of all cores) above which the machine is too busy to measure")
	fs.Float64Var(&o.MaxForeign, "max-foreign", 10, "CPU use by other processes during a run (% of all cores) above which the run is noise")
	fs.DurationVar(&o.WaitQuiet, "wait-quiet", 2*time.Minute, "how long to wait for a quiet machine before each run")
	fs.IntVar(&o.Retries, "retries", 2, "how many times a run disturbed by other processes is redone")
	fs.BoolVar(&o.Force, "force", false, "measure on a busy machine anyway; the numbers are marked not reportable")
	only := fs.String("candidates", "", "comma-separated subset of direct,haproxy,weft")
	scen := fs.String("scenarios", "", "comma-separated scenario name prefixes (default: all)")
	skipDP := fs.Bool("skip-data-plane", false, "run only the control plane")
	skipCP := fs.Bool("skip-control-plane", false, "run only the data plane")
	noWrk := fs.Bool("no-wrk-check", false, "skip the cross-check of the load generator against wrk")
	var shape runner.CPShape
	fs.IntVar(&shape.Services, "cp-services", 1000, "control plane: services")
	fs.IntVar(&shape.PerService, "cp-per-service", 10, "control plane: instances (endpoints) per service")
	fs.IntVar(&shape.Sidecars, "cp-sidecars", 1000, "control plane: simulated sidecars")
	fs.IntVar(&shape.Upstreams, "cp-upstreams", 10, "control plane: upstream services per sidecar")
	changes := fs.Int("cp-changes", 200, "control plane: endpoint changes timed one after another")
	budget := fs.Duration("cp-change-budget", 3*time.Minute, "control plane: stop the endpoint changes after this long")
	reportEvery := fs.Duration("cp-report-every", time.Second, "control plane: each simulated sidecar sends a golden-signal report this often (sidecars send one every 10s; faster measures sooner)")
	reportRounds := fs.Int("cp-report-rounds", 10, "control plane: reports each simulated sidecar sends; 0 skips the reporting phase")
	replicas := fs.Int("cp-replicas", 1, "control plane: 1 measures the benchmark's own controller process; 3 (or 5) instead starts that many `weft controller` replicas (Raft) with the file adapter, from --bin (make build), and measures them")
	skipModels := fs.Bool("skip-models", false, "skip the deployment-models scenario (models-N: sidecars, application proxies, one node proxy)")
	modelSizes := fs.String("models-sizes", "1,10,50", "deployment models: instances on the node, comma-separated (scenarios models-1, models-10, ...)")
	var mo runner.ModelsOptions
	fs.IntVar(&mo.Apps, "models-apps", 5, "deployment models: applications the instances are split over (each its own proxy in the application model)")
	fs.Float64Var(&mo.Rate, "models-rate", 100, "deployment models: requests per second through the mesh, over all instances")
	fs.IntVar(&mo.ConnsPerApp, "models-conns", 2, "deployment models: load generator connections per application")
	fs.IntVar(&mo.Reps, "models-reps", 1, "deployment models: pairs of runs (direct, then through the mesh) per model; latencies are their medians")
	fs.DurationVar(&mo.Duration, "models-duration", 6*time.Second, "deployment models: measured time of each run (direct, then through the mesh)")
	fs.DurationVar(&mo.Warmup, "models-warmup", time.Second, "deployment models: warm-up before each run, not recorded")
	fs.StringVar(&mo.FirstAddress, "models-first-address", "127.0.160.2", "deployment models: the local adapter's first instance address (the instances take the next ones)")
	poll := fs.Duration("cp-adapter-poll", 10*time.Millisecond, "control plane with --cp-replicas: the file adapter's poll interval (an endpoint change waits up to this long)")
	fs.Parse(args)
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("reps", func() { o.Reps = 1 })
		def("wait-quiet", func() { o.WaitQuiet = 0 })
		def("retries", func() { o.Retries = 0 })
		def("duration", func() { o.Duration = 2 * time.Second })
		def("warmup", func() { o.Warmup = 500 * time.Millisecond })
		def("idle-conns", func() { o.IdleConns = 200 })
		def("cp-services", func() { shape.Services = 100 })
		def("cp-sidecars", func() { shape.Sidecars = 100 })
		def("cp-changes", func() { *changes = 20 })
		def("models-sizes", func() { *modelSizes = "1,10" })
		def("models-duration", func() { mo.Duration = 2 * time.Second })
		def("models-warmup", func() { mo.Warmup = 500 * time.Millisecond })
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	if *scen != "" {
		o.Scenarios = strings.Split(*scen, ",")
	}
	o.WrkCheck = !*skipDP && !*noWrk
	o.Log = os.Stderr
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	if bin, err := filepath.Abs(o.Bin); err == nil {
		o.Bin = bin
	}
	if err := runner.EnsureTools(logf); err != nil {
		return err
	}
	r := &runner.Report{
		Started: time.Now().UTC(), Command: "weft-bench run " + strings.Join(args, " "),
		Options: runner.OptionsJSON{Reps: o.Reps, Duration: o.Duration.String(), Warmup: o.Warmup.String(), IdleConns: o.IdleConns,
			BulkEndpoints: o.BulkEndpoints, MaxBusy: o.MaxBusy, MaxForeign: o.MaxForeign, Force: o.Force, ProxyCore: "0", LoadCore: "1"},
	}
	r.Machine = runner.DescribeMachine()
	var failed error
	if !*skipDP && dataPlaneSelected(o.Scenarios) {
		failed = runner.DataPlane(ctx, o, r)
	}
	if sizes, err := parseSizes(*modelSizes); err != nil {
		return err
	} else if sizes = runner.SelectModelSizes(sizes, o.Scenarios); failed == nil && !*skipDP && !*skipModels && len(sizes) > 0 {
		mo.Bin, mo.Out, mo.Sizes, mo.Log = o.Bin, o.Out, sizes, os.Stderr
		mo.MaxBusy, mo.MaxForeign, mo.WaitQuiet, mo.Retries, mo.Force = o.MaxBusy, o.MaxForeign, o.WaitQuiet, o.Retries, o.Force
		m, err := runner.Models(ctx, mo)
		if err != nil {
			failed = fmt.Errorf("deployment models: %w", err)
		} else {
			r.Models = m
			if !m.Quiet {
				r.NotReportable = append(r.NotReportable, "deployment models: machine busy during a run")
			}
		}
	}
	if failed == nil && !*skipCP && *replicas > 1 {
		cp, err := runner.ControlPlaneReplicas(ctx, runner.CPReplicasOptions{Replicas: *replicas, Poll: *poll,
			CPOptions: runner.CPOptions{Bin: o.Bin, Out: o.Out, Shape: shape, Changes: *changes, ChangeBudget: *budget, MaxBusy: o.MaxBusy, WaitQuiet: o.WaitQuiet, Force: o.Force, Log: os.Stderr}})
		if err != nil {
			failed = fmt.Errorf("control plane, %d replicas: %w", *replicas, err)
		} else {
			r.ControlPlaneReplicas = cp
			if !cp.Quiet {
				r.NotReportable = append(r.NotReportable, "control plane (replicas): machine busy before the run")
			}
		}
	}
	if failed == nil && !*skipCP && *replicas <= 1 {
		cp, err := runner.ControlPlane(ctx, runner.CPOptions{Bin: o.Bin, Out: o.Out, Shape: shape, Changes: *changes, ChangeBudget: *budget, ReportEvery: *reportEvery, ReportRounds: *reportRounds, MaxBusy: o.MaxBusy, WaitQuiet: o.WaitQuiet, Force: o.Force, Log: os.Stderr})
		if err != nil {
			failed = fmt.Errorf("control plane: %w", err)
		} else {
			r.ControlPlane = cp
			if !cp.Quiet {
				r.NotReportable = append(r.NotReportable, "control plane: machine busy before the run")
			}
		}
	}
	r.Reportable = failed == nil && len(r.NotReportable) == 0
	if failed != nil {
		r.NotReportable = append(r.NotReportable, "run stopped: "+failed.Error())
	}
	md, err := runner.WriteFiles(o.Out, r)
	if err != nil {
		return err
	}
	fmt.Print(md)
	fmt.Fprintf(os.Stderr, "\nwrote %s and %s\n", filepath.Join(o.Out, "results.json"), filepath.Join(o.Out, "results.md"))
	return failed
}

// dataPlaneSelected: no --scenarios, or one that is not a models one.
func dataPlaneSelected(prefixes []string) bool {
	for _, p := range prefixes {
		if !strings.HasPrefix(p, "models") {
			return true
		}
	}
	return len(prefixes) == 0
}

// parseSizes reads --models-sizes: instance counts from 1 to 100 (the
// local adapter's limit per service), comma-separated; "" is none.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("--models-sizes: %q is not an instance count from 1 to 100", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func cpController(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cp-controller", flag.ExitOnError)
	caDir := fs.String("ca-dir", "", "CA directory")
	listen := fs.String("listen", "127.0.0.1:0", "gRPC address")
	control := fs.String("control", "127.0.0.1:0", "control HTTP address")
	var shape runner.CPShape
	fs.IntVar(&shape.Services, "services", 1000, "services")
	fs.IntVar(&shape.PerService, "per-service", 10, "instances per service")
	fs.IntVar(&shape.Upstreams, "upstreams", 10, "upstream services per service")
	fs.IntVar(&shape.Sidecars, "sidecars", 1000, "simulated sidecars (the first instance of the first services)")
	fs.Parse(args)
	return runner.ServeCPController(ctx, *caDir, *listen, *control, shape)
}
