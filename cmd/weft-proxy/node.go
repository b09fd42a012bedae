package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/grpclog"

	"github.com/weftmesh/weft/core/logging"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/version"
)

// The node proxy (docs/deployment-models.md): one weft-proxy process
// serving several instances of one node, each as its own sidecar would:
//
//	weft-proxy --node NAME --serve ID=ADMIN_HOST:PORT [--serve ...] \
//	  --controller HOST:PORT --trust-bundle FILE [--data-dir DIR]
//
// with the node token in $WEFT_NODE_TOKEN. For each --serve instance it
// composes one core/proxy.Proxy and one controller client
// (core/proxy/control) joining with the node token: the instance's own
// certificate and SPIFFE identity, its own configuration stream, its own
// listeners (the inbound on the instance's mesh address, upstreams on the
// instance's address, so the listener a connection arrives on says which
// instance calls), its own intentions and L7 policy, and its admin
// endpoints (/metrics and the rest) on the instance's admin address. What
// the instances share is the process: the Go runtime, the log writer and
// one node token.
//
// Every listener is bound with SO_REUSEPORT (--reuse-port, on by default
// with --node), so a new node proxy can start beside the running one and
// the old one be stopped with SIGTERM once the new one logs "node proxy
// ready": the old one closes its listeners at once and drains its open
// connections (upgrade.go).
//
// An application proxy is the same process with an application token (a
// node token narrowed to one service) in $WEFT_NODE_TOKEN: the controller
// then admits it only for that application's instances on the node. The
// proxy needs no flag for it; the scope is in the signed token.

// nodeTokenEnv carries the node token.
const nodeTokenEnv = "WEFT_NODE_TOKEN"

// checkRequired names the flags a sidecar needs that are missing.
func checkRequired(o options) error {
	var missing []string
	if o.instance == "" {
		missing = append(missing, `"instance"`)
	}
	if o.trustBundle == "" {
		missing = append(missing, `"trust-bundle"`)
	}
	if o.admin == "" {
		missing = append(missing, `"admin"`)
	}
	if len(missing) > 0 {
		return fmt.Errorf("required flag(s) %s not set (a node proxy takes --node and --serve instead of --instance and --admin)", strings.Join(missing, ", "))
	}
	if len(o.serve) > 0 {
		return errors.New("--serve needs --node: it names an instance of the node proxy")
	}
	return nil
}

// served is one --serve instance.
type served struct{ id, admin string }

// parseServe reads the --serve flags: ID=HOST:PORT each, IDs distinct.
func parseServe(flags []string) ([]served, error) {
	if len(flags) == 0 {
		return nil, errors.New("--node needs at least one --serve ID=ADMIN_HOST:PORT, an instance the node proxy serves")
	}
	seen := map[string]bool{}
	var out []served
	for _, f := range flags {
		id, admin, ok := strings.Cut(f, "=")
		if !ok || id == "" || admin == "" {
			return nil, fmt.Errorf("--serve %q: want ID=ADMIN_HOST:PORT (the instance and where its admin endpoints listen)", f)
		}
		if _, _, err := net.SplitHostPort(admin); err != nil {
			return nil, fmt.Errorf("--serve %q: the admin address: %w", f, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("--serve: instance %q is given twice", id)
		}
		seen[id] = true
		out = append(out, served{id, admin})
	}
	return out, nil
}

func runNode(ctx context.Context, o options) error {
	switch {
	case o.instance != "" || o.admin != "":
		return errors.New("--node serves the --serve instances: drop --instance and --admin")
	case o.trustBundle == "":
		return errors.New(`required flag(s) "trust-bundle" not set`)
	case o.credAdapter != "" && len(o.serve) > 0:
		return errors.New("--node with --serve joins with the node token in $" + nodeTokenEnv + ": drop --credential-adapter (or drop --serve to discover the node's instances with that credential)")
	case o.gateway != "":
		return errors.New("--node and --gateway do not go together: run a gateway as its own proxy")
	}
	if o.serveFile != "" {
		return runServeFile(ctx, o) // servefile.go
	}
	if len(o.serve) == 0 && o.credAdapter != "" {
		return runDiscovering(ctx, o)
	}
	instances, err := parseServe(o.serve)
	if err != nil {
		return err
	}
	accessFormat, controllers, bundle, err := readCommon(o)
	if err != nil {
		return err
	}
	token := os.Getenv(nodeTokenEnv)
	os.Unsetenv(nodeTokenEnv)
	os.Unsetenv(tokenEnv)

	logw := newLogWriter(os.Stderr, o.logFlush)
	defer logw.Close()
	base, _ := o.log.Logger(logw) // checked above
	base = base.With("node", o.node)
	grpclog.SetLoggerV2(logging.GRPCLogger(base))

	// Every instance's admin port is bound first, so a port in use fails
	// the start whole, as it would fail a sidecar.
	lns := make([]net.Listener, len(instances))
	for i, in := range instances {
		ln, err := proxy.Listen(ctx, in.admin, o.reusePort)
		if err != nil {
			for _, l := range lns[:i] {
				l.Close()
			}
			return fmt.Errorf("binding the admin listener of instance %s on %s: %w; free the port or pass another --serve address%s", in.id, in.admin, err, reusePortHint(o.reusePort))
		}
		lns[i] = ln
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(instances))
	// Every instance (its proxy and its admin server) drains at once when
	// the node proxy stops: one after another, each waiting out its
	// connections, a node proxy of 50 busy instances would take 50 drain
	// timeouts to stop.
	closers := make([]io.Closer, 0, 2*len(instances))
	proxies := make([]*proxy.Proxy, 0, len(instances))
	defer func() { closeAll(closers) }()
	for i, in := range instances {
		logger := base.With("instance", in.id)
		p := proxy.New(proxy.Options{Log: logw, Logger: logger, AccessLogFormat: accessFormat, ReusePort: o.reusePort})
		closers = append(closers, p)
		proxies = append(proxies, p)
		dataDir := ""
		if o.dataDir != "" {
			dataDir = filepath.Join(o.dataDir, in.id)
		}
		client, err := proxy.NewClient(p, proxy.ClientOptions{
			InstanceID:  in.id,
			Controllers: controllers,
			TrustBundle: bundle,
			JoinToken:   token,
			DataDir:     dataDir,
			Logger:      logger,
		})
		if err != nil {
			return fmt.Errorf("instance %s: %w", in.id, err)
		}
		shield := p.AdminShield()
		admin := &http.Server{Handler: shield.Handler(p.AdminHandler())}
		shield.Server(admin)
		go admin.Serve(shield.Listener(lns[i]))
		closers = append(closers, closerFunc(func() error { shutdown(admin); return nil }))
		go p.RunReports(ctx, o.reportEvery, client)
		go p.RunBudgets(ctx, client)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- serveOne(ctx, in.id, client, logger)
		}()
	}
	base.Info("weft-proxy for node: instances and controllers", "version", version.Version, "instances", len(instances), "controllers", controllers, "reuse_port", o.reusePort)
	// SIGTERM closes the listeners at once (upgrade.go).
	defer closeOnStop(ctx, base, closers)()
	go watchReady(ctx, base, o.readyFile, proxiesReady(proxies))
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(all...)
}

// serveOne runs one instance's controller client. When the controller
// refuses the instance for good, the others go on: the error is logged
// and returned when every instance has ended.
func serveOne(ctx context.Context, id string, c *proxy.Client, logger *slog.Logger) error {
	err := c.Run(ctx)
	if err != nil && ctx.Err() == nil {
		logger.Error("instance's controller client ended; the node proxy serves the other instances", "err", err)
		return fmt.Errorf("instance %s: %w", id, err)
	}
	return nil
}

// closerFunc is a func as an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// closeAll closes every c at once and returns when all have closed.
func closeAll(cs []io.Closer) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
}

func shutdown(s *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.Shutdown(ctx)
}

// runDiscovering runs the node proxy that asks the controller for its
// instances (discover.go).
func runDiscovering(ctx context.Context, o options) error {
	if err := checkDiscover(o); err != nil {
		return err
	}
	accessFormat, controllers, bundle, err := readCommon(o)
	if err != nil {
		return err
	}
	credential, err := credentialSource(o)
	if err != nil {
		return err
	}
	os.Unsetenv(nodeTokenEnv)
	os.Unsetenv(tokenEnv)
	tlsConf, err := controllerTLSConfig(controllers[0], bundle)
	if err != nil {
		return err
	}
	logw := newLogWriter(os.Stderr, o.logFlush)
	defer logw.Close()
	base, _ := o.log.Logger(logw) // checked above
	base = base.With("node", o.node)
	grpclog.SetLoggerV2(logging.GRPCLogger(base))
	d := &discoverer{
		o: o, base: base, controller: controllers[0], tls: tlsConf,
		running: map[string]*servedInstance{},
		newProxy: func(id string) *proxy.Proxy {
			return proxy.New(proxy.Options{Log: logw, Logger: base.With("instance", id), AccessLogFormat: accessFormat, ReusePort: o.reusePort})
		},
		clientOpts: func(id string) proxy.ClientOptions {
			return proxy.ClientOptions{
				InstanceID:        id,
				Controllers:       controllers,
				TrustBundle:       bundle,
				DataDir:           instanceDataDir(o.dataDir, id),
				CredentialAdapter: o.credAdapter,
				Credential:        credential,
				Logger:            base.With("instance", id),
			}
		},
	}
	return d.run(ctx, credential)
}
