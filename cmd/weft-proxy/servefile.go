package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/grpclog"

	"github.com/weftmesh/weft/core/logging"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/version"
)

// The node proxy a launcher keeps up to date (the local adapter's shared
// proxies, docs/deployment-models.md):
//
//	weft-proxy --node NAME --serve-file FILE --controller HOST:PORT \
//	  --trust-bundle FILE [--data-dir DIR] [--discover-interval 2s]
//
// FILE (serveFile, at most maxServeFileBytes) lists the instances to
// serve and the token to join them with. The proxy reads it at start and
// again every --discover-interval; when it changed, an instance that
// appears is started, one that is gone is stopped, one whose admin address
// or identity changed is stopped and started again, and the others are
// not touched: their listeners and established connections stay. The
// launcher writes a new file (with a fresh token: each (token, instance)
// pair admits once) whenever the instances change, instead of restarting
// the process. An instance whose client ends (the controller refused it)
// is started again when the file next changes.

// serveFile is what --serve-file holds.
type serveFile struct {
	// Token is the node (or application) token the instances join with.
	Token     string          `json:"token"`
	Instances []serveFileItem `json:"instances"`
}

// serveFileItem is one instance of a serve file.
type serveFileItem struct {
	ID    string `json:"id"`
	Admin string `json:"admin"` // ADMIN_HOST:PORT, as --serve's
	// Identity is what the launcher knows of the instance's identity
	// ("namespace/service"): a change restarts the instance's client, so
	// that it joins anew.
	Identity string `json:"identity,omitempty"`
}

// maxServeFileBytes bounds a serve file, checked before it is parsed.
const maxServeFileBytes = 1 << 20

// readServeFile reads and checks path.
func readServeFile(path string) (serveFile, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return serveFile{}, nil, fmt.Errorf("reading the serve file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxServeFileBytes+1))
	if err != nil {
		return serveFile{}, nil, fmt.Errorf("reading the serve file %s: %w", path, err)
	}
	if len(b) > maxServeFileBytes {
		return serveFile{}, nil, fmt.Errorf("the serve file %s is larger than %d bytes: it lists instances and a token, no more", path, maxServeFileBytes)
	}
	var sf serveFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return serveFile{}, nil, fmt.Errorf("parsing the serve file %s (JSON: a token and the instances): %w", path, err)
	}
	seen := map[string]bool{}
	for _, in := range sf.Instances {
		switch _, _, err := net.SplitHostPort(in.Admin); {
		case in.ID == "":
			return serveFile{}, nil, fmt.Errorf("the serve file %s lists an instance without an id", path)
		case err != nil:
			return serveFile{}, nil, fmt.Errorf("the serve file %s: instance %s: the admin address %q: %w", path, in.ID, in.Admin, err)
		case seen[in.ID]:
			return serveFile{}, nil, fmt.Errorf("the serve file %s lists instance %s twice", path, in.ID)
		}
		seen[in.ID] = true
	}
	return sf, b, nil
}

// fileNode serves the instances of a serve file.
type fileNode struct {
	o          options
	base       *slog.Logger
	newProxy   func(id string) *proxy.Proxy
	clientOpts func(id, token string) proxy.ClientOptions

	running map[string]*fileInstance // only run's goroutine touches it
	wg      sync.WaitGroup
}

// fileInstance is one served instance and what it was started with.
type fileInstance struct {
	item   serveFileItem
	cancel context.CancelFunc
	done   chan struct{}
}

// runServeFile runs the node proxy of a serve file until ctx is done.
func runServeFile(ctx context.Context, o options) error {
	switch {
	case len(o.serve) > 0:
		return errors.New("--serve-file and --serve do not go together: list the instances in the file")
	case o.credAdapter != "":
		return errors.New("--serve-file joins with the token in the file: drop --credential-adapter")
	case o.discoverEvery <= 0:
		return errors.New("--discover-interval must be positive")
	}
	sf, raw, err := readServeFile(o.serveFile)
	if err != nil {
		return err // a launcher writes it before the start
	}
	accessFormat, controllers, bundle, err := readCommon(o)
	if err != nil {
		return err
	}
	os.Unsetenv(nodeTokenEnv)
	os.Unsetenv(tokenEnv)
	logw := newLogWriter(os.Stderr, o.logFlush)
	defer logw.Close()
	base, _ := o.log.Logger(logw) // checked above
	base = base.With("node", o.node)
	grpclog.SetLoggerV2(logging.GRPCLogger(base))
	n := &fileNode{
		o: o, base: base, running: map[string]*fileInstance{},
		newProxy: func(id string) *proxy.Proxy {
			return proxy.New(proxy.Options{Log: logw, Logger: base.With("instance", id), AccessLogFormat: accessFormat, ReusePort: o.reusePort})
		},
		clientOpts: func(id, token string) proxy.ClientOptions {
			return proxy.ClientOptions{
				InstanceID: id, Controllers: controllers, TrustBundle: bundle, JoinToken: token,
				DataDir: instanceDataDir(o.dataDir, id), Logger: base.With("instance", id),
			}
		},
	}
	base.Info("weft-proxy for node: serving the instances of its serve file", "version", version.Version, "file", o.serveFile, "controllers", controllers)
	n.reconcile(ctx, sf)
	t := time.NewTicker(o.discoverEvery)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			// Each instance's listeners closed as ctx ended (start).
			stopping := time.Now()
			n.base.Info("node proxy stopping: closing every listener; open connections drain", "drain_timeout", drainTimeout)
			n.stopAll()
			n.base.Info("node proxy stopped: listeners closed and connections drained", "took", time.Since(stopping).Round(time.Millisecond))
			return nil
		case <-t.C:
		}
		next, b, err := readServeFile(o.serveFile)
		if err != nil {
			// Logged once per distinct error; the served instances go on.
			if msg := err.Error(); msg != lastErr {
				base.Warn("keeping the instances served: the serve file is unreadable", "err", err)
				lastErr = msg
			}
			continue
		}
		lastErr = ""
		if bytes.Equal(b, raw) {
			continue
		}
		raw = b
		n.reconcile(ctx, next)
	}
}

// reconcile makes the served instances those of sf.
func (n *fileNode) reconcile(ctx context.Context, sf serveFile) {
	want := map[string]serveFileItem{}
	for _, in := range sf.Instances {
		want[in.ID] = in
	}
	for id, s := range n.running {
		w, listed := want[id]
		ended := false
		select {
		case <-s.done:
			ended = true // its client ended: started again below if listed
		default:
		}
		if listed && w == s.item && !ended {
			continue
		}
		if !ended {
			if listed {
				n.base.Info("instance changed; serving it anew", "instance", id, "identity", w.Identity, "admin", w.Admin)
			} else {
				n.base.Info("instance left this node proxy", "instance", id)
			}
			s.cancel()
			<-s.done
		}
		delete(n.running, id)
	}
	for _, in := range sf.Instances {
		if _, ok := n.running[in.ID]; ok {
			continue
		}
		if err := n.start(ctx, in, sf.Token); err != nil {
			n.base.Error("starting an instance of the node proxy; it is tried again when the serve file changes", "instance", in.ID, "err", err)
			continue
		}
		n.base.Info("instance joined this node proxy", "instance", in.ID, "identity", in.Identity)
	}
}

// start binds the instance's admin listener, composes its Proxy and
// controller client and runs them until the instance is stopped.
func (n *fileNode) start(ctx context.Context, in serveFileItem, token string) error {
	ln, err := proxy.Listen(ctx, in.Admin, n.o.reusePort)
	if err != nil {
		return fmt.Errorf("binding the admin listener on %s: %w%s", in.Admin, err, reusePortHint(n.o.reusePort))
	}
	p := n.newProxy(in.ID)
	client, err := proxy.NewClient(p, n.clientOpts(in.ID, token))
	if err != nil {
		ln.Close()
		p.Close()
		return err
	}
	ictx, cancel := context.WithCancel(ctx)
	// A stop (SIGTERM, or the instance leaving) closes its listeners at
	// once; its open connections drain (upgrade.go).
	context.AfterFunc(ictx, func() { p.Close() })
	s := &fileInstance{item: in, cancel: cancel, done: make(chan struct{})}
	n.running[in.ID] = s
	shield := p.AdminShield()
	admin := &http.Server{Handler: shield.Handler(p.AdminHandler())}
	shield.Server(admin)
	go admin.Serve(shield.Listener(ln))
	logger := n.base.With("instance", in.ID)
	go p.RunReports(ictx, n.o.reportEvery, client)
	go p.RunBudgets(ictx, client)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(s.done)
		defer p.Close()
		defer shutdown(admin)
		defer cancel()
		_ = serveOne(ictx, in.ID, client, logger)
	}()
	return nil
}

func (n *fileNode) stopAll() {
	for _, s := range n.running {
		s.cancel()
	}
	n.wg.Wait()
}
