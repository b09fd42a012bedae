package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/grpclog"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/jwks"
	"github.com/weftmesh/weft/core/logging"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/proxy/control"
	"github.com/weftmesh/weft/core/refusals"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
	"github.com/weftmesh/weft/core/telemetry"
	policyhcl "github.com/weftmesh/weft/hcl"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/host"
)

type controllerFlags struct {
	policyDir   string
	adapters    []string
	options     []string
	pluginDir   string
	listen      string
	admin       string
	dataDir     string
	proxyBinary string
	pollEvery   time.Duration
	serverNames []string
	pluginSums  []string
	// sidecarControllers are every replica's sidecar API, as the
	// sidecars that adapters start are given them (default: listen).
	sidecarControllers []string
	raft               raftFlags
	trustBundle        trustBundleFlags
}

func newControllerCmd() *cobra.Command {
	var f controllerFlags
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Weft controller",
		Long: `Run the Weft controller: launch the adapters, watch the policy directory,
compile one configuration per instance, and serve certificates and
configuration to sidecars.

Each --adapter is NAME=SOURCE. Built-in adapters (local) run as plugin
processes of this binary; any other NAME is a third-party adapter, the
binary weft-adapter-NAME in --plugin-dir.

Every adapter binary is verified by SHA-256 before each launch. Built-in
adapters must match this binary as it was when the controller started. A
third-party adapter must match its pin: --plugin-checksum NAME=sha256:HEX,
or else the file weft-adapter-NAME.sha256 beside it, as sha256sum writes it:

  (cd plugins.d && sha256sum weft-adapter-file > weft-adapter-file.sha256)

An unpinned or changed plugin is refused; the error gives its SHA-256.`,
		Example: `  weft controller --policy-dir examples/local/policy --adapter local=examples/local/workloads.hcl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runController(ctx, f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policyDir, "policy-dir", "", "directory of HCL policy files, watched for changes (required)")
	fl.StringArrayVar(&f.adapters, "adapter", nil, "an adapter to run, NAME=SOURCE (repeatable), e.g. local=examples/local/workloads.hcl")
	fl.StringArrayVar(&f.options, "adapter-option", nil, "an option for an adapter, NAME.KEY=VALUE (repeatable), e.g. local.first_address=127.0.10.2")
	fl.StringVar(&f.pluginDir, "plugin-dir", "plugins.d", "directory holding third-party adapters (weft-adapter-NAME, pinned by weft-adapter-NAME.sha256)")
	fl.StringArrayVar(&f.pluginSums, "plugin-checksum", nil, "the SHA-256 a third-party adapter's binary must have, NAME=sha256:HEX (repeatable); wins over weft-adapter-NAME.sha256")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7400", "address of the sidecar API (gRPC over TLS)")
	fl.StringVar(&f.admin, "admin", "127.0.0.1:7401", "address of the admin API, HTTPS with the controller's certificate (clients need the token in DATA_DIR/admin.token and the CA bundle DATA_DIR/ca/ca.crt)")
	fl.StringVar(&f.dataDir, "data-dir", ".weft", "directory for the CA, the admin token and adapters' state")
	fl.StringVar(&f.proxyBinary, "proxy-binary", "", "path of weft-proxy, for adapters that start sidecars (default: beside this binary, then $PATH)")
	fl.DurationVar(&f.pollEvery, "policy-poll", time.Second, "how often to look for policy changes")
	fl.StringSliceVar(&f.sidecarControllers, "sidecar-controller", nil, "the sidecar API of every controller replica, host:port (repeatable or comma-separated; a DNS name may stand for several), as adapters give it to the sidecars they start (default: --listen)")
	fl.StringSliceVar(&f.serverNames, "server-name", nil, "extra DNS names or IPs for the controller's certificate, as sidecars and admin clients dial it (e.g. weft-controller.weft-system.svc); needed when --listen or --admin is 0.0.0.0")
	f.raft.register(fl)
	f.trustBundle.register(fl)
	_ = cmd.MarkFlagRequired("policy-dir")
	return cmd
}

// parsePluginChecksums reads the --plugin-checksum NAME=sha256:HEX flags,
// each for a third-party --adapter.
func parsePluginChecksums(flags []string, specs []adapterSpec) (map[string][]byte, error) {
	pins := map[string][]byte{}
	for _, fl := range flags {
		name, value, ok := strings.Cut(fl, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--plugin-checksum %q: want NAME=sha256:HEX, as `sha256sum weft-adapter-NAME` prints HEX", fl)
		}
		if _, builtin := builtinAdapters[name]; builtin {
			return nil, fmt.Errorf("--plugin-checksum %q: %s is a built-in adapter, verified against this binary itself; drop the flag", fl, name)
		}
		if !slices.ContainsFunc(specs, func(a adapterSpec) bool { return a.name == name }) {
			return nil, fmt.Errorf("--plugin-checksum %q: there is no --adapter %s=...; add one or fix the name", fl, name)
		}
		if _, dup := pins[name]; dup {
			return nil, fmt.Errorf("--plugin-checksum %q: adapter %s is pinned twice; give one checksum", fl, name)
		}
		sum, err := host.ParseChecksum(value)
		if err != nil {
			return nil, fmt.Errorf("--plugin-checksum %q: %w", fl, err)
		}
		pins[name] = sum
	}
	return pins, nil
}

type adapterSpec struct {
	name, source string
	options      map[string]string
}

func parseAdapters(specs, options []string) ([]adapterSpec, error) {
	var out []adapterSpec
	seen := map[string]bool{}
	for _, s := range specs {
		name, source, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--adapter %q: want NAME=SOURCE, for example local=examples/local/workloads.hcl", s)
		}
		if seen[name] {
			return nil, fmt.Errorf("--adapter %q: adapter %s is given twice; run one adapter per name", s, name)
		}
		seen[name] = true
		out = append(out, adapterSpec{name: name, source: source, options: map[string]string{}})
	}
	for _, o := range options {
		kv, value, ok := strings.Cut(o, "=")
		name, key, ok2 := strings.Cut(kv, ".")
		if !ok || !ok2 || name == "" || key == "" {
			return nil, fmt.Errorf("--adapter-option %q: want NAME.KEY=VALUE, for example local.first_address=127.0.10.2", o)
		}
		found := false
		for _, a := range out {
			if a.name == name {
				a.options[key] = value
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("--adapter-option %q: there is no --adapter %s=...; add one or fix the name", o, name)
		}
	}
	return out, nil
}

func runController(ctx context.Context, f controllerFlags, stderr io.Writer) error {
	// One log, in one format (--log-level, --log-format): the
	// controller's events, policy and adapter diagnostics, the plugins'
	// lines (plugins/host), the admin server's and gRPC's errors.
	log, err := logFlags.Logger(stderr)
	if err != nil {
		return err
	}
	grpclog.SetLoggerV2(logging.GRPCLogger(log))
	specs, err := parseAdapters(f.adapters, f.options)
	if err != nil {
		return err
	}
	if len(f.sidecarControllers) == 0 {
		f.sidecarControllers = []string{f.listen}
	}
	if f.sidecarControllers, err = control.ParseControllers(f.sidecarControllers); err != nil {
		return fmt.Errorf("--sidecar-controller: %w", err)
	}
	bundleSource, err := f.trustBundle.check(specs)
	if err != nil {
		return err
	}
	pins, err := parsePluginChecksums(f.pluginSums, specs)
	if err != nil {
		return err
	}
	// Built-in adapters run from this binary: it must stay the one that
	// started.
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable, to launch the built-in adapters: %w", err)
	}
	selfSum, err := host.FileChecksum(self)
	if err != nil {
		return fmt.Errorf("checksumming this executable, to verify the built-in adapters: %w", err)
	}
	// The policy must be good before anything starts.
	pol, sources, err := loadPolicy(f.policyDir, log)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	// A replica's CA is the cluster's (raft.go).
	rep, err := f.raft.prepare(f.dataDir, log)
	if err != nil {
		return err
	}
	// The watched directory, or the replicated policy (policy_source.go).
	polSrc, pol := choosePolicy(f, rep, pol, sources, log)
	var authority *ca.CA
	if rep != nil {
		authority, err = rep.loadCA()
	} else {
		authority, err = ca.LoadOrCreate(filepath.Join(f.dataDir, "ca"))
	}
	if err != nil {
		return err
	}
	// Join tokens are single-use across restarts: the spent ones are on
	// disk, or, for a replica, in the replicated state.
	var spent ca.SpentStore
	if rep == nil {
		file, err := ca.OpenSpentFile(filepath.Join(f.dataDir, "spent-join-tokens"))
		if err != nil {
			return err
		}
		defer file.Close()
		spent = file
	}
	token, err := api.LoadOrCreateToken(f.dataDir)
	if err != nil {
		return err
	}
	proxyBin, err := findProxy(f.proxyBinary)
	if err != nil {
		return err
	}

	listenHost, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return fmt.Errorf("parsing --listen %q: %w", f.listen, err)
	}
	adminHost, _, err := net.SplitHostPort(f.admin)
	if err != nil {
		return fmt.Errorf("parsing --admin %q: %w; want HOST:PORT, e.g. 127.0.0.1:7401", f.admin, err)
	}
	if rep != nil {
		if err := rep.open(ctx, authority, pol.Mesh.TrustDomain, certHosts(listenHost, adminHost, f.serverNames), log); err != nil {
			return err
		}
		defer rep.close()
		spent = rep.node.SpentTokens()
	}

	reg := registry.New()
	names := make([]string, 0, len(specs))
	for _, a := range specs {
		names = append(names, a.name)
	}
	ctl := controller.New(controller.Options{Registry: reg, Logger: log, Adapters: names})
	sups := map[string]*host.Supervisor{}
	for _, a := range specs {
		opts, err := adapterOptions(a, f, pluginBinary{self: self, selfSum: selfSum, pins: pins}, pol.Mesh.TrustDomain, authority, proxyBin, log)
		if err != nil {
			return err
		}
		if sups[a.name], err = host.New(opts); err != nil {
			return err
		}
	}
	// The sidecars' golden-signal reports (GET /v1/stats, weft stat).
	collector := telemetry.New(telemetry.Options{})
	// A replica passes its sidecars' reports and demand on to the others,
	// so that stats and budgets are the same from any replica (raft.go).
	stats, pool, relayRun := rep.share(collector)
	srv := meshserver.New(meshserver.Options{
		Stats:   stats,
		Budgets: pool,
		CA:      authority, Join: ca.NewJoinVerifierWith(authority.JoinSecret(), spent), Workloads: ctl, Logger: log,
		VerifyCredential: verifyWith(sups),
		Binder:           ctl,
		Health:           ctl, // sidecars' active health checks (core/controller health.go)
		RootsReload:      f.raft.rootsReload(),
	})
	rep.serve(srv)

	// One certificate for both APIs, issued again at half-life and after a
	// root rotation.
	serving, err := srv.ServingTLSConfig(spiffe.Identity{TrustDomain: pol.Mesh.TrustDomain, Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService},
		certHosts(listenHost, adminHost, f.serverNames))
	if err != nil {
		return err
	}
	rep.setServing(serving)
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening for sidecars on %s: %w (is another controller running? pick another address with --listen)", f.listen, err)
	}
	// Refused handshakes on both APIs: at most a line a second each, and
	// counted in GET /v1/status.
	warnf := func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }
	refusedSidecar := refusals.New(refusals.Options{Prefix: "sidecar API: ", Logf: warnf})
	refusedAdmin := refusals.New(refusals.Options{Prefix: "admin API: ", Logf: warnf})
	defer refusedSidecar.Close()
	defer refusedAdmin.Close()
	// Both APIs have the defences of every Weft listener (core/protect):
	// connection setup and header timeouts, header and stream limits,
	// connections per source; the admin API sheds load too.
	shieldedSidecar, shieldedAdmin := &protect.Counter{}, &protect.Counter{}
	sidecarShield := protect.NewShield(protect.ControllerDefaults(), protect.Options{Listener: "sidecar API", Refused: shieldedSidecar.Refused})
	adminSettings := protect.AdminDefaults()
	// A replicated policy's 1 MiB of files takes about 1.4 MiB in JSON
	// (POST /v1/policy/apply checks its own limit, and every other
	// endpoint its own smaller one).
	adminSettings.MaxRequestBodyBytes = max(adminSettings.MaxRequestBodyBytes, api.MaxPolicyApplyBody)
	adminShield := protect.NewShield(adminSettings, protect.Options{Listener: "admin API", Refused: shieldedAdmin.Refused})
	g := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(refusals.GRPCCredentials(credentials.NewTLS(serving), refusedSidecar))},
		sidecarShield.GRPCServerOptions()...)...)
	srv.Register(g)
	adminLis, err := net.Listen("tcp", f.admin)
	if err != nil {
		lis.Close()
		return fmt.Errorf("listening for the admin API on %s: %w (pick another address with --admin)", f.admin, err)
	}

	snapshots := make(chan model.Snapshot, 16)
	policies := make(chan *policy.Policy, 1)
	// The watcher's policies pass through the JWT key resolver (core/jwks),
	// which inlines each jwt_provider's keys and sends the policy again
	// when they change.
	loaded := make(chan *policy.Policy, 1)
	loaded <- pol
	keys := jwks.New(jwks.Options{Logger: log.With("logger", "jwks")})
	adapters := &adapterStates{}

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run := func(fn func()) { wg.Add(1); go func() { defer wg.Done(); fn() }() }

	run(func() { _ = g.Serve(sidecarShield.Listener(lis)) })
	// The controller's own health, GET /metrics on the admin API.
	ctlMetrics := telemetry.NewMetrics(telemetry.Sources{Streams: srv.Status, Adapters: adapters.reports, Entries: ctl.Entries, Dropped: ctl.Dropped,
		Roots: authority.Roots, Collector: collector})
	metricsBuilds := controller.Observer(ctlMetrics.Build)
	adminSrv := api.NewServer(api.NewHandler(api.Options{
		Token: token, Mesh: ctl, Sidecars: srv, Authority: authority, Policy: polSrc, Adapters: adapters.reports,
		Refused:   map[string]*refusals.Log{"sidecar_api": refusedSidecar, "admin_api": refusedAdmin},
		Shielded:  map[string]*protect.Counter{"sidecar_api": shieldedSidecar, "admin_api": shieldedAdmin},
		Summarize: policyhcl.Summary,
		JWKS:      jwksReports(keys),
		Stats:     collector,
		Metrics:   ctlMetrics.Handler(),
		Tap:       rep.taps(srv), // across replicas (raft.go)
		Replica:   rep.replica(),
		// The replicated policy (weft policy apply), on a replica.
		PolicyStore: rep.policyStore(), CompilePolicy: compilePolicy,
	}), serving)
	adminSrv.ErrorLog = refusals.HTTPErrorLog(refusedAdmin, logging.LineWriter(log.With("logger", "admin_api"), slog.LevelWarn))
	adminSrv.Handler = adminShield.Handler(adminSrv.Handler)
	adminShield.Server(adminSrv)
	adminSrv.RegisterOnShutdown(srv.EndTaps) // a tap's stream would hold Shutdown up
	run(func() { _ = adminSrv.ServeTLS(adminShield.Listener(adminLis), "", "") })
	run(func() { _ = ctl.Run(ctx, snapshots, policies, controller.ConfigServer(srv), metricsBuilds) })
	run(func() { srv.RetireRoots(ctx) })
	run(func() { relayRun(ctx) })
	run(func() { keys.Run(ctx, loaded, policies) })
	run(func() { polSrc.Run(ctx, loaded) })
	if f.trustBundle.name != "" {
		run(func() {
			if err := f.trustBundle.run(ctx, bundleSource, authority, rep, log); err != nil {
				log.Error("trust bundle: not kept in the meshed namespaces", "err", err)
			}
		})
	}

	for _, a := range specs {
		sup := sups[a.name]
		updates := make(chan host.Update, 4)
		run(func() {
			err := sup.Run(ctx, updates, adapters.set)
			if err != nil && ctx.Err() == nil {
				log.Error("adapter stopped", "adapter", a.name, "err", err)
			}
		})
		run(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case u := <-updates:
					// The supervisor has logged u.Diagnostics, with their
					// severity (plugins/host).
					select {
					case snapshots <- u.Snapshot:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	}
	log.Info("controller ready", "sidecar_api", lis.Addr().String(), "admin_api", "https://"+adminLis.Addr().String(),
		"trust_domain", pol.Mesh.TrustDomain, "adapters", len(specs), "data_dir", f.dataDir)

	<-ctx.Done()
	log.Info("shutting down: stopping adapters (the local adapter stops the processes it started)")
	cancel()
	// Adapters shut down inside Supervise; the gRPC server stops after.
	g.Stop()
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = adminSrv.Shutdown(shutdownCtx)
	wg.Wait()
	return nil
}

// verifyWith checks a sidecar's scheduler credential with the adapter it
// names, over the plugin protocol.
func verifyWith(sups map[string]*host.Supervisor) func(context.Context, string, string, string) (meshserver.CredentialClaims, error) {
	return func(ctx context.Context, adapter, instance, credential string) (meshserver.CredentialClaims, error) {
		h, ok := sups[adapter]
		if !ok {
			return meshserver.CredentialClaims{}, fmt.Errorf("this controller runs no adapter %q", adapter)
		}
		r, err := h.VerifyIdentity(ctx, &plugins.VerifyIdentityRequest{InstanceID: instance, Credential: credential})
		if errors.Is(err, host.ErrNotRunning) {
			return meshserver.CredentialClaims{}, fmt.Errorf("%w: %w", meshserver.ErrRetry, err)
		}
		if err != nil {
			return meshserver.CredentialClaims{}, err
		}
		return meshserver.CredentialClaims{Instance: r.InstanceID, Service: r.Service, Namespace: r.Namespace, Node: r.Node}, nil
	}
}

// pluginBinary is how adapter binaries are found and verified: built-in
// ones are this binary (self, whose SHA-256 at start is selfSum),
// third-party ones are pinned by --plugin-checksum (pins) or their .sha256
// file.
type pluginBinary struct {
	self    string
	selfSum []byte
	pins    map[string][]byte
}

func adapterOptions(a adapterSpec, f controllerFlags, bin pluginBinary, trustDomain string, authority *ca.CA, proxyBin string, log *slog.Logger) (host.Options, error) {
	var command func() *exec.Cmd
	var checksum func() ([]byte, error)
	if _, ok := builtinAdapters[a.name]; ok {
		command = func() *exec.Cmd { return ownGroup(exec.Command(bin.self, "adapter", a.name)) }
		checksum = func() ([]byte, error) { return bin.selfSum, nil }
	} else {
		path, err := host.Find(f.pluginDir, a.name)
		if err != nil {
			return host.Options{}, err
		}
		// Refuse an unpinned plugin now, with the way to pin it; the pin
		// file is read again before each restart, so pinning a replaced
		// binary takes effect without restarting the controller.
		pinned := bin.pins[a.name]
		if _, err := host.Pin(path, pinned); err != nil {
			return host.Options{}, err
		}
		command = func() *exec.Cmd { return ownGroup(exec.Command(path)) }
		checksum = func() ([]byte, error) { return host.Pin(path, pinned) }
	}
	source := a.source
	if source != "" && !filepath.IsAbs(source) {
		if _, err := os.Stat(source); err == nil {
			source, _ = filepath.Abs(source)
		}
	}
	dataDir, err := filepath.Abs(filepath.Join(f.dataDir, "adapters", a.name))
	if err != nil {
		return host.Options{}, fmt.Errorf("resolving the data directory: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return host.Options{}, fmt.Errorf("creating adapter data directory: %w", err)
	}
	return host.Options{
		Name:     a.name,
		Command:  command,
		Checksum: checksum,
		Request: plugins.ConfigureRequest{
			Source:  source,
			Options: a.options,
			Mesh: plugins.MeshContext{
				TrustDomain:     trustDomain,
				ControllerAddrs: f.sidecarControllers,
				TrustBundlePEM:  authority.RootsPEM(),
				JoinKey:         ca.DeriveJoinKey(authority.JoinSecret(), a.name),
				ProxyBinary:     proxyBin,
				DataDir:         dataDir,
			},
		},
		Logger: log.With("adapter", a.name),
	}, nil
}

// ownGroup puts an adapter plugin in a process group of its own, so that a
// Ctrl-C at the terminal reaches only the controller, which then shuts the
// plugin down gracefully (and the local adapter stops what it started),
// instead of killing the plugin in the middle of that.
func ownGroup(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func findProxy(flag string) (string, error) {
	if flag != "" {
		p, err := filepath.Abs(flag)
		if err != nil {
			return "", fmt.Errorf("resolving --proxy-binary: %w", err)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("--proxy-binary %s: %w", flag, err)
		}
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "weft-proxy")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("weft-proxy"); err == nil {
		return filepath.Abs(p)
	}
	// Only adapters that start sidecars need it; they say so if it is missing.
	return "", nil
}

// certHosts are the names and addresses the controller's certificate
// carries: those of its two APIs, loopback, and --server-name. An
// unspecified address (0.0.0.0, ::) names nothing a client dials; such a
// controller needs --server-name.
func certHosts(listenHost, adminHost string, extra []string) []string {
	hosts := []string{}
	for _, h := range []string{listenHost, adminHost} {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	return uniq(append(append(hosts, "127.0.0.1", "::1", "localhost"), extra...))
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// loadPolicy loads a policy directory, logging every diagnostic as a
// record with its file, line, column, severity, summary and detail (the
// controller's log has one format; `weft policy validate` renders them for
// a human). It also returns the source of every file, by base name, for
// GET /v1/policy.
func loadPolicy(dir string, log *slog.Logger) (*policy.Policy, map[string]string, error) {
	pol, diags, files := policyhcl.Load(dir)
	for _, d := range diags {
		level, severity := slog.LevelWarn, "warning"
		if d.Severity == hcl.DiagError {
			level, severity = slog.LevelError, "error"
		}
		attrs := []any{"severity", severity, "summary", d.Summary, "detail", d.Detail}
		if d.Subject != nil {
			attrs = append(attrs, "file", d.Subject.Filename, "line", d.Subject.Start.Line, "column", d.Subject.Start.Column)
		}
		log.Log(context.Background(), level, "policy diagnostic", attrs...)
	}
	if diags.HasErrors() || pol == nil {
		first := ""
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				first = d.Summary
				if d.Subject != nil {
					first = fmt.Sprintf("%s:%d,%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary)
				}
				break
			}
		}
		return nil, nil, fmt.Errorf("policy in %s has errors (see above), the first at %s; fix them, `weft policy validate %s` checks without starting anything", dir, first, dir)
	}
	sources := make(map[string]string, len(files))
	for name, f := range files {
		sources[filepath.Base(name)] = string(f.Bytes)
	}
	return pol, sources, nil
}

// adapterStates are the supervised adapter plugins' states, for the admin
// API's status.
type adapterStates struct {
	mu sync.Mutex
	m  map[string]host.Status
}

func (a *adapterStates) set(s host.Status) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]host.Status{}
	}
	a.m[s.Adapter] = s
}

// reports lists the states as the admin API reports them (nil for none).
func (a *adapterStates) reports() []api.AdapterReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []api.AdapterReport
	for _, s := range a.m {
		out = append(out, adapterReport(s))
	}
	return out
}

// adapterReport is one plugin's state as the admin API reports it: while
// the adapter cannot read its scheduler its LAST ERROR says so, else the
// plugin's own last failure.
func adapterReport(s host.Status) api.AdapterReport {
	r := api.AdapterReport{Name: s.Adapter, Pid: s.Pid, Running: s.Running, Restarts: s.Restarts, LastError: s.LastError}
	at := s.LastErrorAt
	if s.SourceError != "" {
		r.LastError, r.SourceFailing, at = s.SourceError, true, s.SourceErrorAt
	}
	if r.LastError != "" && !at.IsZero() {
		r.LastErrorAt = &at
	}
	return r
}

// jwksReports lists the JWT key sets keys reads, for GET /v1/status.
func jwksReports(keys *jwks.Resolver) func() []api.JWKSReport {
	return func() []api.JWKSReport {
		var out []api.JWKSReport
		for _, st := range keys.Statuses() {
			r := api.JWKSReport{Source: st.Source, KeyBytes: st.Keys, Error: st.Error}
			if !st.ReadAt.IsZero() {
				at := st.ReadAt
				r.ReadAt = &at
			}
			out = append(out, r)
		}
		return out
	}
}
