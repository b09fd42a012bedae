// Command weft-proxy is the Weft sidecar: it runs next to one application
// instance, joins the mesh with a single-use token, receives its
// configuration from the controller and carries the instance's traffic
// over mTLS (core/proxy). It links only the data plane: no scheduler
// client, no policy language, no plugin machinery, no CA or compiler.
// Its events go through one log/slog logger on stderr (core/logging:
// --log-level, --log-format text|json, gRPC's own lines included);
// access-log lines go to the same batched writer as data
// (core/proxy, accesslog.go), in --access-log-format text or json. A bad
// value of a logging flag exits with status 2.
//
//	weft-proxy --instance ID --controller HOST:PORT [--controller HOST:PORT ...] \
//	  --trust-bundle FILE --admin HOST:PORT [--data-dir DIR] [--report-interval 10s] \
//	  [--log-level info] [--log-format text] [--access-log-format text] [--gateway NAME]
//
// The same binary is an ingress gateway when the controller's configuration
// for the instance carries a gateway (a policy's gateway block names the
// instance's service); --gateway NAME makes it refuse (NACK) any
// configuration that is not gateway NAME's, so that a misplaced sidecar
// never opens a gateway's ports or a gateway a sidecar's.
//
// The controller replicas: --controller repeated, or a comma-separated
// list, or $WEFT_CONTROLLERS when no --controller is given; a DNS name
// stands for every address it resolves to. The sidecar talks to one at a
// time, in an order of its own drawn at random, and moves to another when
// its replica dies (core/proxy/control, replicas.go).
//
// Every --report-interval it sends the controller a report of its golden
// signals on the same mTLS connection (core/proxy, report.go).
//
// The join token comes in WEFT_JOIN_TOKEN, never on the command line.
//
// The node proxy: with --node NAME and one --serve ID=ADMIN_HOST:PORT per
// instance (instead of --instance and --admin), one process serves several
// instances of a node, each with its own identity, configuration stream,
// listeners, policy and admin endpoints, joining with the node token in
// WEFT_NODE_TOKEN (node.go; docs/deployment-models.md); with --serve-file
// instead, the instances and the token come from a file it reads again
// every --discover-interval, so instances come and go without a restart
// (servefile.go). A node proxy binds its ports with SO_REUSEPORT
// (--reuse-port, on by default with --node), so that its upgrade starts
// the new process beside the old one (upgrade.go).
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/grpclog"

	"github.com/weftmesh/weft/core/logging"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/control"
	"github.com/weftmesh/weft/core/version"
)

// tokenEnv carries the join token.
const tokenEnv = "WEFT_JOIN_TOKEN"

// reportEnv, when set to a duration, is the default of --report-interval:
// the local adapter's sidecars inherit the controller's environment.
const reportEnv = "WEFT_REPORT_INTERVAL"

// reportIntervalDefault is $WEFT_REPORT_INTERVAL when it is a duration
// of 0 or more, else 10s.
func reportIntervalDefault() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(reportEnv)); err == nil && d >= 0 {
		return d
	}
	return 10 * time.Second
}

// controllersEnv, a comma-separated list of host:port, gives the
// controller replicas when no --controller is given.
const controllersEnv = "WEFT_CONTROLLERS"

// accessLogEnv, when set, is the default of --access-log-format (as
// logging.FormatEnv is of --log-format): sidecars started by an adapter
// inherit it from the controller.
const accessLogEnv = "WEFT_ACCESS_LOG_FORMAT"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for a bad flag value (a usage error), 1 otherwise.
func exitCode(err error) int {
	var fe *logging.FlagError
	var ae *proxy.AccessLogFormatError
	if errors.As(err, &fe) || errors.As(err, &ae) {
		return 2
	}
	return 1
}

type options struct {
	instance    string
	controllers []string
	trustBundle string
	admin       string
	dataDir     string
	credAdapter string
	credEnv     string
	credFile    string
	logFlush    time.Duration
	reportEvery time.Duration
	log         logging.Flags
	accessLog   string
	gateway     string   // --gateway: the only gateway configuration taken
	node        string   // --node: run as the node proxy of this node (node.go)
	serve       []string // --serve ID=ADMIN: the node proxy's instances
	serveFile   string   // --serve-file: the node proxy's instances, kept up to date (servefile.go)
	// --discover-interval: how often a node proxy without --serve asks
	// the controller for its instances (discover.go)
	discoverEvery time.Duration
	// --reuse-port: bind every listener with SO_REUSEPORT so that a new
	// proxy can start beside this one (reuseport.go); on by default with
	// --node
	reusePort bool
	// --ready-file: written once a node proxy is ready (upgrade.go)
	readyFile string
}

func newRootCmd() *cobra.Command {
	var o options
	root := &cobra.Command{
		Use:   "weft-proxy --instance ID --controller HOST:PORT [--controller HOST:PORT ...] --trust-bundle FILE --admin HOST:PORT [--data-dir DIR]",
		Short: "The Weft sidecar proxy",
		Long: `weft-proxy runs beside one application instance. It joins the mesh with the
single-use token in $WEFT_JOIN_TOKEN, streams its configuration from the
controller, and carries the instance's traffic over mTLS: inbound from other
sidecars to the application, outbound from the application to its upstreams
on local ports. It keeps serving with its last configuration and certificate
while no controller answers.

Admin endpoints on --admin: /ready, /metrics (Prometheus), /config, /stats
(upstream endpoints, outlier ejections), /health (the application's health
check state).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setGCDefaults() // gc.go
			if !cmd.Flags().Changed("reuse-port") {
				o.reusePort = reusePortDefault(o)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := checkReadyFile(o); err != nil {
				return err
			}
			if o.node != "" {
				return runNode(ctx, o)
			}
			return run(ctx, o)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	fl := root.Flags()
	fl.StringVar(&o.instance, "instance", "", "ID of the instance this sidecar serves")
	fl.StringArrayVar(&o.controllers, "controller", nil, "controller replica host:port: repeat it or give a comma-separated list for every replica; a DNS name stands for every address it resolves to (default from $"+controllersEnv+")")
	fl.StringVar(&o.trustBundle, "trust-bundle", "", "PEM file of the roots that verify the controller's certificate")
	fl.StringVar(&o.admin, "admin", "", "address host:port of the admin endpoints (/ready, /metrics, /config, /stats)")
	fl.StringVar(&o.dataDir, "data-dir", "", "directory keeping the certificate across restarts (optional)")
	fl.StringVar(&o.credAdapter, "credential-adapter", "", "join with a scheduler credential checked by this adapter (nomad, kubernetes) instead of $WEFT_JOIN_TOKEN")
	fl.StringVar(&o.credEnv, "credential-env", "", "environment variable holding the scheduler credential (e.g. NOMAD_TOKEN)")
	fl.StringVar(&o.credFile, "credential-file", "", "file holding the scheduler credential, re-read at every join (e.g. a projected service-account token)")
	o.log.Register(fl)
	fl.StringVar(&o.accessLog, "access-log-format", logging.EnvOr(accessLogEnv, "text"), "access-log line format: text (key=value) or json (one object a line, with request_id, trace_id, caller, route, status, bytes, dur_ms) (default from $"+accessLogEnv+")")
	fl.DurationVar(&o.logFlush, "log-flush", 100*time.Millisecond, "write the log (one access-log line per request) in batches this often; 0 writes every line at once")
	fl.StringVar(&o.gateway, "gateway", "", "run as the ingress gateway NAME: refuse any configuration that is not that gateway's (optional; the configuration carries the mode)")
	fl.DurationVar(&o.reportEvery, "report-interval", reportIntervalDefault(), "send the controller a report of the golden signals (requests, successes, latency, bytes, denials) this often; 0 sends none (or set "+reportEnv+", which sidecars a scheduler starts inherit)")
	fl.StringVar(&o.node, "node", "", "run as the node proxy of node NAME, serving every --serve instance with its own identity (the node token in $"+nodeTokenEnv+"), or, with --credential-adapter and no --serve, every instance of its node the controller lists (docs/deployment-models.md)")
	fl.DurationVar(&o.discoverEvery, "discover-interval", 2*time.Second, "with --node and --credential-adapter but no --serve: how often to ask the controller which instances of this node chose node mode (a Nomad system job; discover.go); with --serve-file, how often to read the file again")
	fl.StringVar(&o.serveFile, "serve-file", "", "with --node: a JSON file listing the instances to serve and the token to join them with, read again every --discover-interval: instances added or removed there are started or stopped without touching the others (servefile.go)")
	fl.BoolVar(&o.reusePort, "reuse-port", false, "bind every listener (mesh, upstream, admin) with SO_REUSEPORT, so that a new weft-proxy of the same user can start beside this one before it is stopped: an upgrade with no moment of refused connections (Linux; default true with --node, false otherwise; reuseport.go)")
	fl.StringVar(&o.readyFile, "ready-file", "", "with --node: write this file once every instance holds its certificate and configuration, remove it on SIGTERM; `weft-proxy ready --file PATH` is the probe (the admin ports, shared with --reuse-port, cannot tell which process answers)")
	fl.StringArrayVar(&o.serve, "serve", nil, "with --node: an instance ID=ADMIN_HOST:PORT the node proxy serves, with that instance's admin endpoints; repeat it")
	root.AddCommand(newReadyCmd()) // upgrade.go
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "weft-proxy", version.Version) },
	})
	return root
}

func run(ctx context.Context, o options) error {
	if err := checkRequired(o); err != nil {
		return err
	}
	accessFormat, controllers, bundle, err := readCommon(o)
	if err != nil {
		return err
	}
	token := os.Getenv(tokenEnv)
	os.Unsetenv(tokenEnv) // nothing started from here needs it
	credential, err := credentialSource(o)
	if err != nil {
		return err
	}

	logw := newLogWriter(os.Stderr, o.logFlush)
	defer logw.Close() // after the proxy's last line
	// One logger for the sidecar's events; access lines go to the same
	// writer as data (core/proxy, accesslog.go).
	logger, _ := o.log.Logger(logw) // checked above
	grpclog.SetLoggerV2(logging.GRPCLogger(logger))
	p := proxy.New(proxy.Options{Log: logw, Logger: logger, AccessLogFormat: accessFormat, Gateway: o.gateway, ReusePort: o.reusePort})
	defer p.Close()
	client, err := proxy.NewClient(p, proxy.ClientOptions{
		InstanceID:  o.instance,
		Controllers: controllers,
		TrustBundle: bundle,
		JoinToken:   token,
		DataDir:     o.dataDir,

		CredentialAdapter: o.credAdapter,
		Credential:        credential,
		Logger:            logger,
	})
	if err != nil {
		return err
	}

	ln, err := proxy.Listen(ctx, o.admin, o.reusePort)
	if err != nil {
		return fmt.Errorf("binding the admin listener on %s: %w; free the port or pass another --admin%s", o.admin, err, reusePortHint(o.reusePort))
	}
	// The admin port has the defences of every listener (core/protect):
	// header timeout, header and body limits, connections per source,
	// load shedding.
	shield := p.AdminShield()
	admin := &http.Server{Handler: shield.Handler(p.AdminHandler())}
	shield.Server(admin)
	go admin.Serve(shield.Listener(ln))
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		admin.Shutdown(sctx)
	}()
	logger.Info("weft-proxy for instance: admin and controllers", "version", version.Version, "instance", o.instance, "admin", ln.Addr().String(), "controllers", controllers)
	go p.RunReports(ctx, o.reportEvery, client)
	go p.RunBudgets(ctx, client) // global rate limits' shares
	return client.Run(ctx)
}

// credentialSource returns how to read the scheduler credential, if the
// sidecar joins with one.
func credentialSource(o options) (func() (string, error), error) {
	switch {
	case o.credAdapter == "" && (o.credEnv != "" || o.credFile != ""):
		return nil, errors.New("--credential-env and --credential-file need --credential-adapter, the adapter that checks the credential (nomad, kubernetes)")
	case o.credAdapter == "":
		return nil, nil
	case o.credEnv != "" && o.credFile != "":
		return nil, errors.New("give one of --credential-env and --credential-file, not both")
	case o.credEnv != "":
		v := os.Getenv(o.credEnv)
		if v == "" {
			return nil, fmt.Errorf("--credential-env %s: the variable is empty or unset; give the task its scheduler credential there (Nomad: identity { env = true } sets NOMAD_TOKEN)", o.credEnv)
		}
		return func() (string, error) { return v, nil }, nil
	case o.credFile != "":
		return func() (string, error) {
			b, err := os.ReadFile(o.credFile)
			if err != nil {
				return "", fmt.Errorf("reading --credential-file: %w", err)
			}
			return strings.TrimSpace(string(b)), nil
		}, nil
	default:
		return nil, fmt.Errorf("--credential-adapter %s needs --credential-env or --credential-file", o.credAdapter)
	}
}

// readCommon reads the flags every mode of weft-proxy shares (access
// log format, logging, controllers, trust bundle): bad ones are usage
// errors, found before anything starts.
func readCommon(o options) (proxy.AccessLogFormat, []string, *x509.CertPool, error) {
	accessFormat, err := proxy.ParseAccessLogFormat(o.accessLog)
	if err != nil {
		return accessFormat, nil, nil, err
	}
	if _, err := o.log.Logger(io.Discard); err != nil {
		return accessFormat, nil, nil, err
	}
	controllers := o.controllers
	if len(controllers) == 0 {
		controllers = []string{os.Getenv(controllersEnv)}
	}
	if controllers, err = control.ParseControllers(controllers); err != nil {
		return accessFormat, nil, nil, fmt.Errorf("--controller (or $%s): %w", controllersEnv, err)
	}
	bundle, err := readTrustBundle(o.trustBundle)
	return accessFormat, controllers, bundle, err
}

func readTrustBundle(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("reading the trust bundle: " + path + " holds no PEM certificate; pass the controller CA's root certificate")
	}
	return pool, nil
}
